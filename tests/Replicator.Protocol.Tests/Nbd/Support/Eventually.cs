namespace Replicator.Protocol.Tests.Nbd.Support;

internal static class Eventually
{
    /// <summary>Polls until <paramref name="condition"/> holds; fails the test after <see cref="NbdTestClient.Timeout"/>.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + NbdTestClient.Timeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the condition did not become true in time");
            await Task.Delay(10);
        }
    }
}

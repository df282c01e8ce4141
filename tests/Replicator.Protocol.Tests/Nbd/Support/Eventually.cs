namespace Replicator.Protocol.Tests.Nbd.Support;

internal static class Eventually
{
    /// <summary>Polls until <paramref name="condition"/> holds; fails the test, naming <paramref name="what"/>, after <see cref="NbdTestClient.Timeout"/>.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition, string what = "the condition")
    {
        var deadline = DateTime.UtcNow + NbdTestClient.Timeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"{what} did not come true within {NbdTestClient.Timeout.TotalSeconds} s");
            await Task.Delay(10);
        }
    }
}

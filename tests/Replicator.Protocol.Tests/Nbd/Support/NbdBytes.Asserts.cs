namespace Replicator.Protocol.Tests.Nbd.Support;

/// <summary>Assertions on bytes received.</summary>
internal static partial class NbdBytes
{
    /// <summary>Asserts every byte is zero, naming the first one that is not.</summary>
    public static void AssertZero(byte[] bytes)
    {
        var index = bytes.AsSpan().IndexOfAnyExcept((byte)0);
        Assert.True(index < 0, $"byte {index} is {(index < 0 ? 0 : bytes[index])}, not zero");
    }
}

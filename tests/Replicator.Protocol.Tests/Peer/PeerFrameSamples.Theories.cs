namespace Replicator.Protocol.Tests.Peer;

/// <summary>The sample names as xunit theory data.</summary>
internal static partial class PeerFrameSamples
{
    public static TheoryData<string> Names => [.. AllNames];
}

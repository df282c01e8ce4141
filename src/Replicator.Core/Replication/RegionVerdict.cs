using Replicator.Core.Hashing;

namespace Replicator.Core.Replication;

/// <summary>What comparing one region of the two replicas found, and so what a repair does with it.</summary>
internal enum RegionVerdict
{
    /// <summary>Both intact and equal.</summary>
    Same,

    /// <summary>Both intact but different: a real divergence. The resync source's copy wins (the generation rules chose the source).</summary>
    Differ,

    /// <summary>This replica's copy fails its checksum (or is unverified) and the peer's is better: this replica takes the peer's.</summary>
    TakePeer,

    /// <summary>The peer's copy fails its checksum (or is unverified) and this one is better: the peer gets this one.</summary>
    SendLocal,

    /// <summary>Both copies fail their checksums: no good copy exists, nothing is copied, and the blocks read as I/O errors.</summary>
    Unrecoverable,
}

/// <summary>
/// The rule by which a verify names the bad side and a repair picks the good one: a replica whose blocks
/// pass their own checksums beats one whose blocks do not, an unverified block (written when a node
/// crashed) beats a damaged one, and only two intact copies are compared by content. A repair therefore
/// never copies a block that fails its own checksum.
/// </summary>
internal static class RegionCompare
{
    public static RegionVerdict Judge(ulong localHash, BlockStatus local, ulong peerHash, BlockStatus peer)
    {
        if (local == BlockStatus.Good && peer == BlockStatus.Good)
        {
            return localHash == peerHash ? RegionVerdict.Same : RegionVerdict.Differ;
        }

        if (local == BlockStatus.Bad && peer == BlockStatus.Bad)
        {
            return RegionVerdict.Unrecoverable;
        }

        // Two unverified copies: this one is accepted as it is and sent, so both end up alike.
        return Trust(local) >= Trust(peer) ? RegionVerdict.SendLocal : RegionVerdict.TakePeer;
    }

    public static RegionVerdict Judge(RegionSums local, RegionSums peer, int region) =>
        Judge(local.Hashes[region], local.Status[region], peer.Hashes[region], peer.Status[region]);

    private static int Trust(BlockStatus status) => status switch
    {
        BlockStatus.Good => 2,
        BlockStatus.Unverified => 1,
        _ => 0,
    };
}

using Replicator.Core.Replication;

namespace Replicator.Node.Admin;

/// <summary>
/// A replica whose disk failed or whose pool is full, on this node or its peer, in the words status output
/// uses: the pair is degraded although it may still be connected.
/// </summary>
internal static class DiskAlerts
{
    /// <summary><c>failed</c> or <c>pool-full</c> while this replica's disk is detached, else null.</summary>
    public static string? Detached(ReplicatedVolume volume) => volume.PairingState.Disk switch
    {
        DiskAttachment.Failed => "failed",
        DiskAttachment.Full => "pool-full",
        _ => null,
    };

    /// <summary>Why the pair is degraded by a disk, and what to do about it; null when no disk is detached.</summary>
    public static string? Describe(ReplicatedVolume volume, string localName)
    {
        var state = volume.PairingState;
        var peer = volume.PeerName;
        var connected = volume.Session is not null;
        switch (state.Disk)
        {
            case DiskAttachment.Failed:
                return $"this node's disk failed and is detached: {(connected ? $"its reads and writes go to {peer}" : "no copy can be served here until " + peer + " is back")}; " +
                       $"repair the disk, then run 'replicator volume attach-disk {volume.Name} --node {localName}' (the resync then compares every region)";
            case DiskAttachment.Full:
                return $"this node's pool is full and its replica is detached: {(connected ? $"its reads and writes go to {peer}" : "no copy can be served here until " + peer + " is back")}; " +
                       "it is attached again, and resynced, once the pool has room (free space, or run 'replicator volume attach-disk')";
        }

        if (volume.Session is { PeerHasDisk: false })
        {
            var why = (state.PeerStatus.Flags & ReplicaFlags.PoolFull) != 0 && !state.PeerStatus.LostWrites ? "pool is full" : "disk failed";
            return $"{peer}'s {why}: this node holds the only up-to-date copy and writes alone (under the witness rule); " +
                   $"{volume.Replica.OutOfSyncBytes} bytes wait for {peer} to be attached again";
        }

        return null;
    }
}

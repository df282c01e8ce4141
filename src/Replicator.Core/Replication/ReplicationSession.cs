namespace Replicator.Core.Replication;

/// <summary>Which way a resync runs, from this replica's point of view.</summary>
internal enum SyncRole
{
    None,
    /// <summary>This replica sends the regions the peer lacks.</summary>
    Source,
    /// <summary>This replica receives them; until then it reads those regions from the peer.</summary>
    Target,
}

/// <summary>
/// One connection's worth of pairing for a volume: how to reach the peer's replica, which side
/// orders writes, and which way a resync runs. Fixed for the life of the connection, except
/// that the resync role ends when the resync completes.
/// </summary>
/// <remarks>
/// <b>Write ordering (invariant 2).</b> While the replicas are connected, exactly one of them —
/// the owner — orders every write, trim and write-zeroes of the volume: it takes the range in
/// its <see cref="RangeLock"/>, applies the change locally and on the peer in parallel, and
/// releases the range only when both are done. A change that arrives at the other node is
/// forwarded to the owner. Overlapping changes therefore reach both replicas one after another
/// in the owner's order, and concurrent writers through both nodes still leave the replicas
/// identical. The owner is the node the volume prefers while both replicas are up to date, and
/// the resync source while one is catching up (so foreground writes and resync data are ordered
/// by the same lock, and resync never overwrites a newer foreground write).
/// </remarks>
internal sealed class ReplicationSession
{
    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ReplicationSession(IPeerVolume peer, string peerName, bool localIsOwner, SyncRole role, PeerReadLease lease)
    {
        Peer = peer;
        PeerName = peerName;
        LocalIsOwner = localIsOwner;
        Role = role;
        Lease = lease;
    }

    public IPeerVolume Peer { get; }

    /// <summary>The connection's read lease: paired reads are served locally only while it is held.</summary>
    public PeerReadLease Lease { get; }

    public string PeerName { get; }

    public bool LocalIsOwner { get; }

    public SyncRole Role { get; internal set; }

    /// <summary>
    /// Whether the resync compares checksums before sending: after a crash while connected, the
    /// activity-log extents it resends mostly hold the same data on both sides.
    /// </summary>
    public bool CompareFirst { get; init; }

    /// <summary>Whether this replica's disk takes part (false: its disk is detached, and every request goes to the peer).</summary>
    public bool LocalHasDisk { get; init; } = true;

    /// <summary>Whether the peer's disk takes part (false: this node orders and applies every write alone and marks what the peer misses).</summary>
    public bool PeerHasDisk { get; init; } = true;

    /// <summary>Completes when the session is detached (the connection ended).</summary>
    public Task Ended => _ended.Task;

    internal void End() => _ended.TrySetResult();
}

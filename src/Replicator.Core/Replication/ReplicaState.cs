namespace Replicator.Core.Replication;

/// <summary>
/// The state of a replica's disk. The values are those of <c>DiskState</c> in <c>proto/peer.proto</c>,
/// so the protocol layer converts with a cast.
/// </summary>
internal enum ReplicaDiskState
{
    Unknown = 0,

    /// <summary>Holds every write acknowledged to a client.</summary>
    UpToDate = 1,

    /// <summary>Consistent, but older than its peer.</summary>
    Outdated = 2,

    /// <summary>In the middle of a resync (or empty): not a usable copy on its own.</summary>
    Inconsistent = 3,

    /// <summary>
    /// No backing storage attached: the disk failed (an I/O error) or its pool is full, and was detached.
    /// The node still serves the volume's clients, through its peer. <see cref="ReplicaFlags.DiskFailed"/>
    /// or <see cref="ReplicaFlags.PoolFull"/> says why.
    /// </summary>
    Diskless = 4,
}

/// <summary>Facts about a replica kept in its metadata across restarts.</summary>
[Flags]
internal enum ReplicaFlags : uint
{
    None = 0,

    /// <summary>
    /// Set (durably) before this replica accepts writes while connected to an up-to-date peer;
    /// cleared by a clean shutdown. Found set at startup, it means the node died while writes could
    /// be in flight: the activity log names the extents that may differ.
    /// </summary>
    ConnectedAndUpToDate = 1,

    /// <summary>
    /// Set at startup when <see cref="ConnectedAndUpToDate"/> was found set, after the activity log
    /// was marked into the dirty bitmap; cleared when a resync with the peer completes. When both
    /// replicas still hold the same data set it makes the peer, which stayed up, the source: a power
    /// loss may have taken writes this replica acknowledged but had not made durable.
    /// </summary>
    CrashedWhileConnected = 2,

    /// <summary>
    /// This replica's dirty bitmap was lost or damaged, so it cannot say what differs: the next
    /// resync, in whichever direction, is a full one. Cleared when that resync completes.
    /// </summary>
    FullSyncRequired = 4,

    /// <summary>
    /// This replica's disk failed (an I/O error on its pool or its metadata) and was detached. It may
    /// have lost any write it had not made durable, so once an admin attaches it again the resync to
    /// it compares every region (checksums) besides sending what the peer marked. Cleared when that
    /// resync completes.
    /// </summary>
    DiskFailed = 8,

    /// <summary>
    /// The peer's disk failed while this replica was its up-to-date partner: the same consequence seen
    /// from this side, kept here too because the peer's own record lives on the disk that failed.
    /// Cleared when a resync from this replica completes.
    /// </summary>
    PeerDiskFailed = 16,

    /// <summary>
    /// This replica's pool filled up and its disk was detached: nothing it held is lost, its peer marks
    /// what it misses. The node attaches it again by itself once the pool has room. Cleared on attach.
    /// </summary>
    PoolFull = 32,
}

/// <summary>What <see cref="SyncDecision.Decide"/> knows of one replica: its identifiers, its disk, its flags.</summary>
internal readonly record struct ReplicaStatus(GenerationIds Ids, ReplicaDiskState Disk, ReplicaFlags Flags = ReplicaFlags.None)
{
    public bool Crashed => (Flags & ReplicaFlags.CrashedWhileConnected) != 0;

    public bool NeedsFullSync => (Flags & ReplicaFlags.FullSyncRequired) != 0;

    public bool HasDisk => Disk is ReplicaDiskState.UpToDate or ReplicaDiskState.Outdated or ReplicaDiskState.Inconsistent;

    public bool IsConsistent => Disk is ReplicaDiskState.UpToDate or ReplicaDiskState.Outdated;

    /// <summary>This replica's disk failed, or its peer saw it fail: the next resync to it compares every region.</summary>
    public bool LostWrites => (Flags & ReplicaFlags.DiskFailed) != 0;

    /// <summary>This replica saw its peer's disk fail: the next resync from it compares every region.</summary>
    public bool PeerLostWrites => (Flags & ReplicaFlags.PeerDiskFailed) != 0;
}

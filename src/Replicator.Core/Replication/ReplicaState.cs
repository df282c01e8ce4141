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

    /// <summary>No backing storage attached.</summary>
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
    /// was marked into the dirty bitmap; cleared when a resync with the peer completes. It makes this
    /// replica the source when both replicas still hold the same data set.
    /// </summary>
    CrashedWhileConnected = 2,

    /// <summary>
    /// This replica's dirty bitmap was lost or damaged, so it cannot say what differs: the next
    /// resync, in whichever direction, is a full one. Cleared when that resync completes.
    /// </summary>
    FullSyncRequired = 4,
}

/// <summary>What <see cref="SyncDecision.Decide"/> knows of one replica: its identifiers, its disk, its flags.</summary>
internal readonly record struct ReplicaStatus(GenerationIds Ids, ReplicaDiskState Disk, ReplicaFlags Flags = ReplicaFlags.None)
{
    public bool Crashed => (Flags & ReplicaFlags.CrashedWhileConnected) != 0;

    public bool NeedsFullSync => (Flags & ReplicaFlags.FullSyncRequired) != 0;

    public bool HasDisk => Disk is ReplicaDiskState.UpToDate or ReplicaDiskState.Outdated or ReplicaDiskState.Inconsistent;

    public bool IsConsistent => Disk is ReplicaDiskState.UpToDate or ReplicaDiskState.Outdated;
}

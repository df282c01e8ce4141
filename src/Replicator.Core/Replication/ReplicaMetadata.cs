namespace Replicator.Core.Replication;

/// <summary>
/// What a node keeps about its replica of one volume, across restarts: generation identifiers,
/// disk state, flags, the peer it replicates to, and the geometry of its bitmap and activity log.
/// Immutable; written whole by <see cref="ReplicaMetadataFile"/>.
/// </summary>
internal sealed record ReplicaMetadata(
    Guid VolumeId,
    Guid PeerNodeId,
    GenerationIds Generation,
    ReplicaDiskState DiskState,
    ReplicaFlags Flags,
    int BitmapGranularity,
    int ActivityLogSlots,
    long ActivityLogExtentSize)
{
    /// <summary>The metadata of a replica created together with its peer's: all zeros, up to date.</summary>
    public static ReplicaMetadata ForNewVolume(
        Guid volumeId,
        Guid peerNodeId,
        int bitmapGranularity = DirtyBitmap.DefaultGranularity,
        int activityLogSlots = ActivityLog.DefaultSlots,
        long activityLogExtentSize = ActivityLog.DefaultExtentSize)
    {
        DirtyBitmap.CheckGranularity(bitmapGranularity);
        ActivityLog.CheckGeometry(activityLogSlots, activityLogExtentSize);
        return new(volumeId, peerNodeId, GenerationIds.NewVolume, ReplicaDiskState.UpToDate, ReplicaFlags.None,
            bitmapGranularity, activityLogSlots, activityLogExtentSize);
    }

    public ReplicaStatus Status => new(Generation, DiskState, Flags);

    /// <summary>
    /// The metadata to write at startup. A replica found <see cref="ReplicaFlags.ConnectedAndUpToDate"/>
    /// died with writes possibly in flight: <paramref name="markActivityLog"/> tells the node to mark
    /// the loaded activity log's extents in the dirty bitmap and flush the bitmap; only then does it
    /// write the returned metadata, which records the crash (<see cref="ReplicaFlags.CrashedWhileConnected"/>)
    /// and no longer claims a connection. A crash in between repeats the marking, which is harmless.
    /// </summary>
    public ReplicaMetadata AfterRestart(out bool markActivityLog)
    {
        markActivityLog = (Flags & ReplicaFlags.ConnectedAndUpToDate) != 0;
        return markActivityLog
            ? this with { Flags = (Flags & ~ReplicaFlags.ConnectedAndUpToDate) | ReplicaFlags.CrashedWhileConnected }
            : this;
    }
}

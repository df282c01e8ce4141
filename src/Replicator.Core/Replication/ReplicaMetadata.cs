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
    /// The metadata to write at startup. First the node marks every extent of the loaded activity
    /// log in the dirty bitmap and flushes the bitmap (a clean shutdown leaves the log empty, so
    /// this costs nothing then); only then does it write the returned metadata. A replica found
    /// <see cref="ReplicaFlags.ConnectedAndUpToDate"/> died with writes possibly in flight to an
    /// up-to-date peer (<paramref name="crashedWhileConnected"/>): the returned metadata records that
    /// (<see cref="ReplicaFlags.CrashedWhileConnected"/>, which makes it the resync source while both
    /// replicas hold the same data set) and no longer claims a connection. A crash in between
    /// repeats the marking, which is harmless.
    /// </summary>
    public ReplicaMetadata AfterRestart(out bool crashedWhileConnected)
    {
        crashedWhileConnected = (Flags & ReplicaFlags.ConnectedAndUpToDate) != 0;
        return crashedWhileConnected
            ? this with { Flags = (Flags & ~ReplicaFlags.ConnectedAndUpToDate) | ReplicaFlags.CrashedWhileConnected }
            : this;
    }
}

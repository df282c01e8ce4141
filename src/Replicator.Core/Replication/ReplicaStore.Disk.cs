using Microsoft.Extensions.Logging;
using Replicator.Core.Devices;

namespace Replicator.Core.Replication;

/// <summary>
/// The replica's disk detached and attached again. Detached (an I/O error, or a full pool), the store
/// keeps its bitmap, activity log and metadata in memory only and writes none of its files: they live
/// beside the failed pool, and the pairing no longer counts on them. Attaching writes all of them anew.
/// </summary>
/// <remarks>
/// Every file write of the store goes through <see cref="PersistLocked"/>: skipped while detached, and an
/// <see cref="IOException"/> from the file system comes out as a <see cref="BlockDeviceException"/>
/// (<see cref="StorageError.Io"/>, or <see cref="StorageError.NoSpace"/> for ENOSPC), which the volume
/// answers by detaching the disk.
/// </remarks>
internal sealed partial class ReplicaStore
{
    private bool _detached;

    /// <summary>Whether the disk is detached: the store writes no file.</summary>
    public bool IsDetached
    {
        get
        {
            lock (_lock)
            {
                return _detached;
            }
        }
    }

    /// <summary>
    /// Stops every file write and records why: the disk is <see cref="ReplicaDiskState.Diskless"/>, with
    /// <see cref="ReplicaFlags.PoolFull"/> or <see cref="ReplicaFlags.DiskFailed"/>. The metadata is written
    /// if it still can be; if not, the peer's identifiers and its <see cref="ReplicaFlags.PeerDiskFailed"/>
    /// keep this replica from counting as up to date later.
    /// </summary>
    public void Detach(string reason, bool full)
    {
        lock (_lock)
        {
            var flags = (_metadata.Flags & ~ReplicaFlags.ConnectedAndUpToDate) | (full ? ReplicaFlags.PoolFull : ReplicaFlags.DiskFailed);
            if (!full)
            {
                flags &= ~ReplicaFlags.PoolFull;
            }

            var metadata = _metadata with { DiskState = ReplicaDiskState.Diskless, Flags = flags };
            if (!_detached)
            {
                try
                {
                    ReplicaMetadataFile.Write(_files, Path.Combine(_directory, MetadataFileName), metadata);
                }
                catch (IOException e)
                {
                    LogDetachNotRecorded(_logger, _metadata.VolumeId, e.Message);
                }
            }

            _metadata = metadata;
            _detached = true;
        }
    }

    /// <summary>
    /// Takes the disk back: writes the bitmap (with every mark the pairing made meanwhile), the activity
    /// log and then the metadata, which says <see cref="ReplicaDiskState.Inconsistent"/> (it lacks what the
    /// peer marked) and keeps <see cref="ReplicaFlags.DiskFailed"/> until a resync to it completes; on a node
    /// without a peer (<paramref name="standalone"/>) the admin's word is all there is: up to date, no flag.
    /// Throws a <see cref="BlockDeviceException"/>, and stays detached, when the disk still fails.
    /// </summary>
    public void Reattach(bool standalone)
    {
        lock (_lock)
        {
            if (!_detached)
            {
                return;
            }

            var metadata = standalone
                ? _metadata with { DiskState = ReplicaDiskState.UpToDate, Flags = _metadata.Flags & ~(ReplicaFlags.PoolFull | ReplicaFlags.DiskFailed) }
                : _metadata with { DiskState = ReplicaDiskState.Inconsistent, Flags = _metadata.Flags & ~ReplicaFlags.PoolFull };
            try
            {
                _bitmapFile.WriteAll(_bitmap);
                _bitmapFile.Flush();
                var snapshot = _activity.Snapshot();
                _activityFile.Write(snapshot);
                _activity.MarkDurable(snapshot.Sequence);
                ReplicaMetadataFile.Write(_files, Path.Combine(_directory, MetadataFileName), metadata);
            }
            catch (IOException e) when (e is not BlockDeviceException)
            {
                throw BlockDeviceException.FromIOException(e, $"writing the replica files of volume {_metadata.VolumeId} to attach its disk");
            }

            _metadata = metadata;
            _detached = false;
        }
    }

    /// <summary>Adds <paramref name="flags"/> to the metadata, durably (in memory only while detached).</summary>
    public void AddFlags(ReplicaFlags flags)
    {
        lock (_lock)
        {
            if ((_metadata.Flags & flags) != flags)
            {
                WriteMetadataLocked(_metadata with { Flags = _metadata.Flags | flags });
            }
        }
    }

    /// <summary>Runs one file write of the store (see the remarks of this class).</summary>
    private void PersistLocked(Action write, string what)
    {
        if (_detached)
        {
            return;
        }

        try
        {
            write();
        }
        catch (IOException e) when (e is not BlockDeviceException)
        {
            throw BlockDeviceException.FromIOException(e, $"writing the {what} of volume {_metadata.VolumeId}");
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Volume {Volume}: the replica metadata could not record that the disk is detached ({Reason}); the peer's records keep it from counting as up to date")]
    private static partial void LogDetachNotRecorded(ILogger logger, Guid volume, string reason);
}

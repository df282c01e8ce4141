using Replicator.Core.Devices;

namespace Replicator.Core.Replication;

/// <summary>The activity log around each write, and the transitions of a replica's life: connect, resync, close.</summary>
internal sealed partial class ReplicaStore
{
    /// <summary>The longest change the activity log tracks; a longer one is tracked by the bitmap (see <see cref="BeginActivityAsync"/>).</summary>
    public long ActivityLogReach => _activity.ExtentSize * (_activity.Slots / 2);

    /// <summary>A write's hold on its activity-log extents, returned to <see cref="EndActivity"/>.</summary>
    public readonly record struct Activity(long Offset, long Length, bool Held);

    /// <summary>
    /// Puts the range's extents in the activity log before a write starts, writing the log durably
    /// (one fsync shared by every write waiting for it) when an extent is new; waits while every
    /// slot has writes in flight. Ranges longer than the log split into pieces would need more
    /// slots than exist, so such a write is tracked by the bitmap instead.
    /// </summary>
    public async ValueTask<Activity> BeginActivityAsync(long offset, long length, CancellationToken cancellationToken)
    {
        if (IsDetached)
        {
            return new Activity(offset, length, Held: false);
        }

        if (length == 0 || length > ActivityLogReach)
        {
            if (length > 0)
            {
                MarkOutOfSync(offset, length);
            }

            return new Activity(offset, length, Held: false);
        }

        while (true)
        {
            ActivityLogBegin begin;
            Task freed;
            lock (_lock)
            {
                begin = _activity.Begin(offset, length);
                freed = _activityFreed.Task;
            }

            switch (begin.Status)
            {
                case ActivityLogStatus.Active:
                    return new Activity(offset, length, Held: true);
                case ActivityLogStatus.Full:
                    await freed.WaitAsync(cancellationToken);
                    continue;
                default:
                    var activity = new Activity(offset, length, Held: true);
                    try
                    {
                        await PersistActivityAsync(begin.Sequence, cancellationToken);
                    }
                    catch
                    {
                        // Begin counted this write in flight; it will not run, so its extents must be let go
                        // (or they could never be evicted, and a clean stop would keep them in the log).
                        EndActivity(activity);
                        throw;
                    }

                    return activity;
            }
        }
    }

    public void EndActivity(Activity activity)
    {
        if (!activity.Held)
        {
            return;
        }

        lock (_lock)
        {
            if (_activity.End(activity.Offset, activity.Length, ++_endedWrites))
            {
                _activityFreed.TrySetResult();
                _activityFreed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
    }

    /// <summary>The replica is paired with its peer. Both up to date with no resync: writes may be in flight to an up-to-date peer from now on.</summary>
    public void OnConnected(Guid peerNodeId, bool inSync)
    {
        lock (_lock)
        {
            _degradedSinceConnect = false;
            _pendingAlone = null;
            var flags = inSync ? _metadata.Flags | ReplicaFlags.ConnectedAndUpToDate : _metadata.Flags & ~ReplicaFlags.ConnectedAndUpToDate;
            if (flags != _metadata.Flags || peerNodeId != _metadata.PeerNodeId)
            {
                WriteMetadataLocked(_metadata with { Flags = flags, PeerNodeId = peerNodeId });
            }
        }
    }

    public void OnDisconnected()
    {
        lock (_lock)
        {
            if ((_metadata.Flags & ReplicaFlags.ConnectedAndUpToDate) != 0)
            {
                WriteMetadataLocked(_metadata with { Flags = _metadata.Flags & ~ReplicaFlags.ConnectedAndUpToDate });
            }
        }
    }

    public void SetDiskState(ReplicaDiskState state)
    {
        lock (_lock)
        {
            if (_metadata.DiskState != state)
            {
                WriteMetadataLocked(_metadata with { DiskState = state });
            }
        }
    }

    /// <summary>
    /// Moves the disk state from <paramref name="from"/> to <paramref name="to"/> only if it is still <paramref name="from"/>:
    /// for a decision taken on a state read earlier, which a pairing may have changed meanwhile (a resync target is
    /// <see cref="ReplicaDiskState.Inconsistent"/>, and must not be called outdated, which would count it consistent).
    /// </summary>
    public bool TryChangeDiskState(ReplicaDiskState from, ReplicaDiskState to)
    {
        lock (_lock)
        {
            if (_metadata.DiskState != from)
            {
                return false;
            }

            WriteMetadataLocked(_metadata with { DiskState = to });
            return true;
        }
    }

    /// <summary>
    /// The volume grows: the bitmap covers the new size. The file first, then the bitmaps in memory:
    /// when the file refuses, nothing has grown, and the next try grows it (were the memory first, the
    /// next try would find nothing to do, and every mark past the file's end would fail).
    /// </summary>
    public void Grow(long volumeSize)
    {
        lock (_lock)
        {
            if (volumeSize > _bitmapFile.VolumeSize)
            {
                PersistLocked(() => _bitmapFile.Grow(volumeSize), "out-of-sync bitmap");
            }

            if (volumeSize > _bitmap.VolumeSize)
            {
                _bitmap.Grow(volumeSize);
                _mayMatch.Grow(volumeSize);
            }
        }
    }

    /// <summary>Marks every given range (the allocated ranges of this replica) for a full sync.</summary>
    public void MarkForFullSync(IEnumerable<(long Offset, long Length)> ranges)
    {
        lock (_lock)
        {
            _bitmap.MarkAll(ranges);
            PersistLocked(() =>
            {
                _bitmapFile.WriteAll(_bitmap);
                _bitmapFile.Flush();
            }, "out-of-sync bitmap");
        }
    }

    /// <summary>This replica's bitmap in wire chunks of at most <paramref name="chunkBytes"/> each.</summary>
    public IReadOnlyList<byte[]> EncodeBitmap(int chunkBytes)
    {
        lock (_lock)
        {
            return DirtyBitmapCodec.EncodeAll(_bitmap, chunkBytes).ToList();
        }
    }

    /// <summary>One wire chunk of this replica's bitmap from <paramref name="fromPage"/>, and where the next starts (-1: none).</summary>
    public (byte[] Chunk, long NextPage) EncodeBitmapChunk(long fromPage, int chunkBytes)
    {
        var buffer = new byte[chunkBytes];
        lock (_lock)
        {
            var length = DirtyBitmapCodec.Encode(_bitmap, fromPage, buffer, out var next);
            return (buffer[..length], next);
        }
    }

    /// <summary>ORs a chunk of the peer's bitmap into this one (the union is what a resync sends).</summary>
    public void MergePeerBitmap(ReadOnlySpan<byte> chunk)
    {
        lock (_lock)
        {
            try
            {
                if (DirtyBitmapCodec.DecodeInto(chunk, _bitmap, _changed, _mayMatch) > 0)
                {
                    // Durable at once: the peer may clear what it sent once the resync it starts has landed,
                    // and a power loss here must not forget that this side still lacks or holds those regions.
                    PersistLocked(() =>
                    {
                        _bitmapFile.WriteWords(_changed);
                        _bitmapFile.Flush();
                    }, "out-of-sync bitmap");
                }
            }
            finally
            {
                _changed.Clear();
            }
        }
    }

    /// <summary>The resync this replica sent is done: the peer holds everything.</summary>
    public void CompleteResyncAsSource()
    {
        lock (_lock)
        {
            ClearAllLocked();
            WriteMetadataLocked(_metadata with
            {
                Generation = _metadata.Generation.CompleteResyncAsSource(),
                Flags = _metadata.Flags & ~(ReplicaFlags.CrashedWhileConnected | ReplicaFlags.FullSyncRequired | ReplicaFlags.PeerDiskFailed),
            });
        }
    }

    /// <summary>The resync this replica received is done: it holds the source's data set and is up to date.</summary>
    public void CompleteResyncAsTarget(GenerationIds source)
    {
        lock (_lock)
        {
            ClearAllLocked();
            WriteMetadataLocked(_metadata with
            {
                Generation = _metadata.Generation.CompleteResyncAsTarget(source),
                DiskState = ReplicaDiskState.UpToDate,
                Flags = _metadata.Flags & ~(ReplicaFlags.CrashedWhileConnected | ReplicaFlags.FullSyncRequired | ReplicaFlags.DiskFailed),
            });
        }
    }

    /// <summary>An admin named this replica as the side of a split brain whose changes are discarded.</summary>
    public void DiscardThisSide(GenerationIds peer)
    {
        lock (_lock)
        {
            var ids = _metadata.Generation.ResolveSplitBrainDiscardingThisSide(peer);
            WriteMetadataLocked(_metadata with
            {
                Generation = ids,
                DiskState = ids.IsEmpty ? ReplicaDiskState.Inconsistent : ReplicaDiskState.Outdated,
            });
        }
    }

    /// <summary>
    /// A clean stop: every write is done, so once the data and the bitmap are durable the activity log
    /// is emptied (in that order: an empty log on disk promises that nothing it named can be lost).
    /// </summary>
    public void CloseCleanly()
    {
        FlushAsync(CancellationToken.None).AsTask().GetAwaiter().GetResult();
        lock (_lock)
        {
            if (_detached)
            {
                return;
            }

            if (_activity.IdleExtents == _activity.ActiveExtents.Count && _activity.Clear() is not null)
            {
                var snapshot = _activity.Snapshot();
                if (_activity.DurableStampRequired(snapshot.Sequence) > _durableStamp)
                {
                    // A write ended between the flush and the lock: leave the log as it is, the next start marks its extents.
                    return;
                }

                _activityFile.Write(snapshot);
                _activity.MarkDurable(snapshot.Sequence);
            }

            if ((_metadata.Flags & ReplicaFlags.ConnectedAndUpToDate) != 0)
            {
                WriteMetadataLocked(_metadata with { Flags = _metadata.Flags & ~ReplicaFlags.ConnectedAndUpToDate });
            }
        }
    }

    /// <summary>
    /// Writes the activity log durably up to <paramref name="sequence"/>. When the snapshot drops extents
    /// (evictions), the data and the bitmap marks of their writes are made durable first: after a power
    /// loss the log must still name every extent whose writes may be lost (see <see cref="ActivityLog"/>).
    /// </summary>
    private async ValueTask PersistActivityAsync(long sequence, CancellationToken cancellationToken)
    {
        await _activityWriter.WaitAsync(cancellationToken);
        try
        {
            ActivityLogSnapshot snapshot;
            bool mustFlush;
            lock (_lock)
            {
                if (_activity.DurableSequence >= sequence || _detached)
                {
                    return;
                }

                snapshot = _activity.Snapshot();
                mustFlush = _activity.DurableStampRequired(snapshot.Sequence) > _durableStamp;
            }

            if (mustFlush)
            {
                // Every eviction in the snapshot happened before it was taken, so its writes had ended,
                // with stamps no newer than the clock the flush starts from.
                await FlushAsync(cancellationToken);
            }

            try
            {
                // An extent the new snapshot leaves out is no longer checked after a crash: what a kill -9 must not lose
                // of its writes (their checksums) reaches the page cache first.
                BeforeActivityLogWrite?.Invoke();
                _activityFile.Write(snapshot);
            }
            catch (IOException e) when (e is not BlockDeviceException)
            {
                throw BlockDeviceException.FromIOException(e, $"writing the activity log of volume {_metadata.VolumeId}");
            }

            lock (_lock)
            {
                _activity.MarkDurable(snapshot.Sequence);
            }
        }
        finally
        {
            _activityWriter.Release();
        }
    }

    private void ClearAllLocked()
    {
        if (_bitmap.DirtyRegions > 0)
        {
            _bitmap.ClearRegions(0, _bitmap.RegionCount, null);
            PersistLocked(() => _bitmapFile.WriteAll(_bitmap), "out-of-sync bitmap");
        }

        _mayMatch.ClearRegions(0, _mayMatch.RegionCount, null);
    }
}

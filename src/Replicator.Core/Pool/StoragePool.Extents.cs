using Replicator.Core.Devices;
using Replicator.Core.Hashing;
using Replicator.Core.Metadata;

namespace Replicator.Core.Pool;

/// <summary>Extent allocation, pinning and retirement: the part of the pool the I/O path calls.</summary>
public sealed partial class StoragePool
{
    /// <summary>Marks an entry of an extent span as "no extent" (a hole).</summary>
    internal const long NoExtent = -1;

    /// <summary>
    /// Looks up the extents of <paramref name="extents"/>.Length units from <paramref name="firstUnit"/>
    /// and pins the mapped ones. Unmapped units get <see cref="NoExtent"/>.
    /// </summary>
    internal void PinMapped(VolumeState volume, long firstUnit, Span<long> extents)
    {
        lock (_lock)
        {
            ThrowIfDisposed();
            for (var i = 0; i < extents.Length; i++)
            {
                extents[i] = volume.Map.TryGet(firstUnit + i, out var extent) ? PinLocked(extent) : NoExtent;
            }
        }
    }

    /// <summary>
    /// Like <see cref="PinMapped"/>, but allocates an extent for every unmapped unit first, journaling
    /// the new mappings in one append. All or nothing: when the pool cannot supply every missing
    /// extent, nothing is allocated or pinned and the call fails with <see cref="StorageError.NoSpace"/>.
    /// </summary>
    internal void PinForWrite(VolumeState volume, long firstUnit, Span<long> extents)
    {
        for (var attempt = 0; ; attempt++)
        {
            lock (_lock)
            {
                ThrowIfDisposed();
                bool pinned, hasQuarantine;
                try
                {
                    pinned = TryPinForWriteLocked(volume, firstUnit, extents, out hasQuarantine);
                }
                catch
                {
                    // Nothing is pinned yet: the caller's Unpin must not release extents the lookup only found.
                    extents.Fill(NoExtent);
                    throw;
                }

                if (pinned)
                {
                    return;
                }

                extents.Fill(NoExtent);
                if (attempt > 0 || !hasQuarantine)
                {
                    throw new BlockDeviceException(StorageError.NoSpace,
                        $"the storage pool is full: volume '{volume.Name}' needs more extents than the {AvailableExtentsLocked()} free");
                }
            }

            // Freed extents are waiting for a flush to make their release durable; do it and retry once.
            Flush();
        }
    }

    internal void Unpin(ReadOnlySpan<long> extents)
    {
        List<long>? discard = null;
        lock (_lock)
        {
            foreach (var extent in extents)
            {
                if (extent == NoExtent)
                {
                    continue;
                }

                var count = _pins[extent];
                if (count > 1)
                {
                    _pins[extent] = count - 1;
                    continue;
                }

                _pins.Remove(extent);
                if (_releaseWhenUnpinned.Remove(extent))
                {
                    (discard ??= []).Add(extent);
                }
            }
        }

        if (discard is not null)
        {
            DiscardAndQuarantine(discard);
        }
    }

    /// <summary>Unmaps the mapped units among <paramref name="count"/> units from <paramref name="firstUnit"/> and frees their extents.</summary>
    internal void UnmapUnits(VolumeState volume, long firstUnit, long count)
    {
        List<long> discard;
        lock (_lock)
        {
            ThrowIfDisposed();
            var records = new List<JournalRecord>();
            var extents = new List<long>();
            var end = firstUnit + count;
            for (var unit = volume.Map.NextMapped(firstUnit, end); unit >= 0; unit = volume.Map.NextMapped(unit + 1, end))
            {
                volume.Map.TryGet(unit, out var extent);
                records.Add(JournalRecord.UnitUnmapped(volume.LocalId, unit));
                extents.Add(extent);
            }

            if (records.Count == 0)
            {
                return;
            }

            _meta.Commit(records.ToArray());
            discard = RetireLocked(extents);
            MaybeCheckpointLocked();
        }

        DiscardAndQuarantine(discard);
    }

    /// <summary>The data file and byte offset an extent lives at.</summary>
    internal (int File, long Offset) Locate(long extent)
    {
        var capacities = _meta.State.FileCapacities;
        var offset = extent * ExtentSize;
        for (var i = 0; i < capacities.Count; i++)
        {
            if (offset < capacities[i])
            {
                return (i, offset);
            }

            offset -= capacities[i];
        }

        throw new ArgumentOutOfRangeException(nameof(extent), extent, "extent is outside the pool");
    }

    /// <summary>Extents from <paramref name="first"/> that are consecutive in the same data file.</summary>
    internal int ContiguousRun(ReadOnlySpan<long> extents, int first)
    {
        var (file, _) = Locate(extents[first]);
        var n = 1;
        while (first + n < extents.Length
            && extents[first + n] == extents[first] + n
            && extents[first + n] != NoExtent
            && Locate(extents[first + n]).File == file)
        {
            n++;
        }

        return n;
    }

    internal void ReadData(long extent, long within, Span<byte> destination)
    {
        var (file, offset) = Locate(extent);
        var read = _data[file].Read(offset + within, destination);
        if (read < destination.Length)
        {
            // Past the end of a file that was cut behind the pool's back: what is missing reads as zeros.
            destination[read..].Clear();
        }
    }

    internal void WriteData(long extent, long within, ReadOnlySpan<byte> source)
    {
        var (file, offset) = Locate(extent);
        _data[file].Write(offset + within, source);
        Written(extent);
    }

    private bool TryPinForWriteLocked(VolumeState volume, long firstUnit, Span<long> extents, out bool hasQuarantine)
    {
        hasQuarantine = _quarantine.Count > 0 || _needZeros.Count > 0;
        var missing = 0;
        for (var i = 0; i < extents.Length; i++)
        {
            extents[i] = volume.Map.TryGet(firstUnit + i, out var extent) ? extent : NoExtent;
            if (extents[i] == NoExtent)
            {
                missing++;
            }
        }

        if (missing > AvailableExtentsLocked())
        {
            return false;
        }

        if (missing > 0)
        {
            var records = new JournalRecord[missing];
            var r = 0;
            for (var i = 0; i < extents.Length; i++)
            {
                if (extents[i] == NoExtent)
                {
                    extents[i] = NextFreeLocked();
                    records[r++] = JournalRecord.UnitMapped(volume.LocalId, firstUnit + i, extents[i]);
                }
            }

            _meta.Commit(records);
            MaybeCheckpointLocked();
        }

        foreach (var extent in extents)
        {
            PinLocked(extent);
        }

        return true;
    }

    private long AvailableExtentsLocked() => _meta.State.ExtentCount - _meta.State.Used.SetCount - _unusable.Count;

    /// <summary>Next-fit: continues after the last extent handed out, so sequential writes get consecutive extents.</summary>
    private long NextFreeLocked()
    {
        var used = _meta.State.Used;
        for (var wrapped = false; ;)
        {
            var candidate = used.NextClear(_cursor);
            while (candidate >= 0 && _unusable.Contains(candidate))
            {
                candidate = used.NextClear(candidate + 1);
            }

            if (candidate >= 0)
            {
                _cursor = candidate + 1;
                return candidate;
            }

            if (wrapped)
            {
                throw new InvalidOperationException("no free extent although the count said there was one");
            }

            wrapped = true;
            _cursor = 0;
        }
    }

    private long PinLocked(long extent)
    {
        _pins[extent] = _pins.GetValueOrDefault(extent) + 1;
        return extent;
    }

    /// <summary>Takes unmapped extents out of circulation; returns those that can be discarded now (not pinned).</summary>
    private List<long> RetireLocked(List<long> extents)
    {
        var discard = new List<long>(extents.Count);
        foreach (var extent in extents)
        {
            _unusable.Add(extent);
            if (_pins.ContainsKey(extent))
            {
                _releaseWhenUnpinned.Add(extent);
            }
            else
            {
                discard.Add(extent);
            }
        }

        return discard;
    }

    private void DiscardAndQuarantine(List<long> extents)
    {
        foreach (var extent in extents)
        {
            var (file, offset) = Locate(extent);
            _data[file].Discard(offset, ExtentSize);
            _checksums?[file].Clear(offset >> BlockChecksum.BlockShift, ExtentSize >> BlockChecksum.BlockShift);
        }

        lock (_lock)
        {
            foreach (var extent in extents)
            {
                Punched(extent);
                if (_suspect.Contains(extent))
                {
                    // An earlier punch of it was lost, and this one may not redo it: only zeros written over it will.
                    _needZeros.Add(extent);
                }
                else
                {
                    _quarantine.Add(extent);
                }
            }
        }
    }

    /// <summary>Makes a byte range inside one extent read as zeros (a punched hole where the file system allows).</summary>
    internal void ZeroData(long extent, long within, long length)
    {
        var (file, offset) = Locate(extent);
        _data[file].Discard(offset + within, length);
        lock (_lock)
        {
            Punched(extent);
        }
    }

    /// <summary>The pool-wide number of the block at <paramref name="within"/> in an extent (the key of <see cref="Guard"/>).</summary>
    internal long PoolBlock(long extent, long within) => ((extent * ExtentSize) + within) >> BlockChecksum.BlockShift;

    /// <summary>Reads the stored checksums of the blocks from <paramref name="within"/> (block-aligned) in one extent run.</summary>
    internal void ReadChecksums(long extent, long within, Span<byte> slots)
    {
        var (store, offset) = Locate(extent);
        _checksums![store].Read((offset + within) >> BlockChecksum.BlockShift, slots);
    }

    internal void WriteChecksums(long extent, long within, ReadOnlySpan<byte> slots)
    {
        var (store, offset) = Locate(extent);
        _checksums![store].Write((offset + within) >> BlockChecksum.BlockShift, slots);
    }

    /// <summary>
    /// Writes the checksums held in memory to their files (the page cache: a kill -9 keeps them; see
    /// <see cref="BlockChecksumStore"/>), without syncing.
    /// </summary>
    internal void WriteBackChecksums() => _checksums?.ForEach(c => c.WriteBack());

    /// <summary>Marks whole blocks unwritten: their data was just punched and reads as zeros.</summary>
    internal void ClearChecksums(long extent, long within, long length)
    {
        var (store, offset) = Locate(extent);
        _checksums![store].Clear((offset + within) >> BlockChecksum.BlockShift, length >> BlockChecksum.BlockShift);
    }

    internal long AllocatedBytesOf(VolumeState volume)
    {
        lock (_lock)
        {
            return volume.Map.MappedCount * ExtentSize;
        }
    }

    /// <summary>The allocation of a byte range as coalesced runs: mapped units are data, the rest holes that read as zeros.</summary>
    internal IReadOnlyList<AllocationExtent> DescribeAllocation(VolumeState volume, long offset, long length)
    {
        var result = new List<AllocationExtent>();
        if (length == 0)
        {
            return result;
        }

        var unitSize = ExtentSize;
        var end = offset + length;
        var lastUnit = (end - 1) / unitSize;
        lock (_lock)
        {
            var position = offset;
            while (position < end)
            {
                var unit = position / unitSize;
                var mapped = volume.Map.TryGet(unit, out _);
                long stop;
                if (mapped)
                {
                    var next = unit + 1;
                    while (next <= lastUnit && volume.Map.TryGet(next, out _))
                    {
                        next++;
                    }

                    stop = next * unitSize;
                }
                else
                {
                    var next = volume.Map.NextMapped(unit + 1, lastUnit + 1);
                    stop = next < 0 ? end : next * unitSize;
                }

                stop = Math.Min(stop, end);
                result.Add(new AllocationExtent(stop - position, mapped ? AllocationState.Data : AllocationState.Hole | AllocationState.Zero));
                position = stop;
            }
        }

        return result;
    }
}

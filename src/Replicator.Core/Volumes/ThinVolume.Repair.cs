using Replicator.Core.Hashing;
using Replicator.Core.Pool;

namespace Replicator.Core.Volumes;

/// <summary>What the check after a crash found in the activity log's extents.</summary>
internal readonly record struct CrashRecheck(long CheckedBlocks, long Unverified, long Settled);

/// <summary>Repairing a damaged block, accepting an unverified one, and the check after a crash.</summary>
public sealed partial class ThinVolume
{
    /// <summary>
    /// Rewrites a block found damaged with a copy verified elsewhere (the peer's) and that copy's checksum: not
    /// replicated, and only while the block still fails its check under its exclusive lock. A block that passes by
    /// then was rewritten by a write since it was found damaged, which is newer than the copy; one no longer mapped
    /// was trimmed and reads as zeros. Returns whether it rewrote the block.
    /// </summary>
    internal bool RepairBlock(long blockOffset, ReadOnlySpan<byte> data, ulong checksum)
    {
        if (data.Length != Block || BlockChecksum.Of(data) != checksum)
        {
            throw new ArgumentException($"the copy of the block at {blockOffset} does not match its checksum", nameof(data));
        }

        Span<long> extent = [StoragePool.NoExtent];
        Span<byte> block = stackalloc byte[Block];
        Span<byte> slot = stackalloc byte[BlockChecksum.Size];
        try
        {
            if (!PinBlock(blockOffset, extent))
            {
                return false;
            }

            var within = blockOffset % UnitSize;
            using (_pool.Guard.EnterExclusive(_pool.PoolBlock(extent[0], within)))
            {
                if (CheckStored(extent[0], within, block) == BlockStatus.Good)
                {
                    return false;
                }

                _pool.WriteData(extent[0], within, data);
                BlockChecksum.Set(slot, 0, checksum);
                _pool.WriteChecksums(extent[0], within, slot);
                _pool.WriteBackChecksums();
                return true;
            }
        }
        catch (IOException e) when (e is not Devices.BlockDeviceException)
        {
            throw Translate(e, "repairing");
        }
        finally
        {
            _pool.Unpin(extent);
        }
    }

    /// <summary>
    /// Accepts a block as it holds now, storing its checksum: for a block not vouched for after a crash (its last write
    /// may have been torn and no verified copy exists). A block that passes its check is left alone. Returns whether it
    /// stored a new checksum.
    /// </summary>
    /// <remarks>
    /// The data is written again before its checksum, and both are flushed: a block left unverified by a failed data sync
    /// (<c>StoragePool.MarkSyncLost</c>) may hold, in the page cache only, data that sync dropped and no later one carries;
    /// a checksum made durable over it alone would name data a power loss takes away.
    /// </remarks>
    internal bool SettleBlock(long blockOffset)
    {
        Span<long> extent = [StoragePool.NoExtent];
        Span<byte> block = stackalloc byte[Block];
        Span<byte> slot = stackalloc byte[BlockChecksum.Size];
        try
        {
            if (!PinBlock(blockOffset, extent))
            {
                return false;
            }

            var within = blockOffset % UnitSize;
            using (_pool.Guard.EnterExclusive(_pool.PoolBlock(extent[0], within)))
            {
                if (CheckStored(extent[0], within, block) == BlockStatus.Good)
                {
                    return false;
                }

                BlockChecksum.Set(slot, 0, BlockChecksum.Of(block));
                _pool.WriteData(extent[0], within, block);
                _pool.WriteChecksums(extent[0], within, slot);
            }

            // Outside the block's lock: a failing sync marks blocks unverified under their locks.
            _pool.Flush();
            return true;
        }
        catch (IOException e) when (e is not Devices.BlockDeviceException)
        {
            throw Translate(e, "settling");
        }
        finally
        {
            _pool.Unpin(extent);
        }
    }

    /// <summary>
    /// After a crash, checks every mapped block of <paramref name="ranges"/> (the extents of the activity log, where every
    /// write that may not have been durable lies) before the volume serves anything. A block whose data and checksum
    /// disagree held a write that never became durable: with a peer to compare with it is marked
    /// <see cref="BlockChecksum.Unverified"/> (the resync after the crash prefers the peer's verified copy); without one
    /// (<paramref name="settle"/>) it is accepted as it is. Either way it is not reported as damage. Makes the result durable.
    /// </summary>
    internal CrashRecheck RecheckAfterCrash(IEnumerable<(long Offset, long Length)> ranges, bool settle)
    {
        if (!_pool.BlockChecksums)
        {
            return default;
        }

        long checkedBlocks = 0, unverified = 0, settled = 0;
        var data = new byte[UnitSize];
        var slots = new byte[BlockChecksum.BytesFor(UnitSize)];
        Span<long> extent = stackalloc long[1];
        foreach (var (offset, length) in ranges)
        {
            var end = Math.Min(Size, offset + length);
            for (var unit = offset / UnitSize; unit * UnitSize < end; unit++)
            {
                extent[0] = StoragePool.NoExtent;
                try
                {
                    _pool.PinMapped(State, unit, extent);
                    if (extent[0] == StoragePool.NoExtent)
                    {
                        continue;
                    }

                    _pool.ReadData(extent[0], 0, data);
                    _pool.ReadChecksums(extent[0], 0, slots);
                    for (var b = 0; b < UnitSize / Block; b++)
                    {
                        checkedBlocks++;
                        var block = data.AsSpan(b * Block, Block);
                        if (BlockChecksum.Check(block, BlockChecksum.Get(slots, b), out var computed) == BlockStatus.Good)
                        {
                            continue;
                        }

                        BlockChecksum.Set(slots.AsSpan(b * BlockChecksum.Size, BlockChecksum.Size), 0, settle ? computed : BlockChecksum.Unverified);
                        _pool.WriteChecksums(extent[0], (long)b * Block, slots.AsSpan(b * BlockChecksum.Size, BlockChecksum.Size));
                        if (settle)
                        {
                            settled++;
                        }
                        else
                        {
                            unverified++;
                        }
                    }
                }
                finally
                {
                    _pool.Unpin(extent);
                }
            }
        }

        _pool.Flush();
        return new CrashRecheck(checkedBlocks, unverified, settled);
    }

    /// <summary>
    /// Writes the checksums held in memory to their files without syncing, so a kill -9 keeps them: before an extent
    /// may leave the activity log, and after writes no activity log covers (resync data).
    /// </summary>
    internal void WriteBackChecksums() => _pool.WriteBackChecksums();

    /// <summary>Pins the extent holding the 4 KiB block at <paramref name="blockOffset"/> into <paramref name="extent"/>; false when it is not mapped (or the pool keeps no checksums).</summary>
    private bool PinBlock(long blockOffset, Span<long> extent)
    {
        CheckRange(blockOffset, Block);
        if ((blockOffset & (Block - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(blockOffset), blockOffset, "a block offset is a multiple of 4 KiB");
        }

        if (!_pool.BlockChecksums)
        {
            return false;
        }

        _pool.PinMapped(State, blockOffset / UnitSize, extent);
        return extent[0] != StoragePool.NoExtent;
    }

    /// <summary>Reads a block and its checksum into <paramref name="block"/> and checks it (the caller holds its lock).</summary>
    private BlockStatus CheckStored(long extent, long within, Span<byte> block)
    {
        Span<byte> slot = stackalloc byte[BlockChecksum.Size];
        _pool.ReadData(extent, within, block);
        _pool.ReadChecksums(extent, within, slot);
        return BlockChecksum.Check(block, BlockChecksum.Get(slot, 0), out _);
    }
}

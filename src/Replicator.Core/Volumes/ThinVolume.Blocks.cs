using System.Buffers;
using Replicator.Core.Devices;
using Replicator.Core.Hashing;
using Replicator.Core.Pool;

namespace Replicator.Core.Volumes;

/// <summary>A block of the volume that failed its check: its volume offset (4 KiB aligned) and what is wrong with it.</summary>
internal readonly record struct DamagedBlock(long Offset, BlockStatus Status);

/// <summary>
/// The checksummed data path: every 4 KiB block goes to the pool with its checksum and is checked
/// against it whenever it is read.
/// </summary>
/// <remarks>
/// <para><b>Writes of whole blocks</b> store the data, then the checksums (one pwrite each per run of
/// consecutive extents), holding their blocks' stripes of the pool's <see cref="BlockGuard"/> shared.
/// The checksums come with the write when the node that took it from the client computed them (the
/// peer link carries them), else they are computed here.</para>
/// <para><b>Writes of part of a block</b> (a 512-byte write, the ragged ends of an unaligned one, a
/// trim or zero that ends inside a block) take the block exclusively, read it with its checksum, check
/// it, merge the new bytes and write the block and its new checksum. A block that fails its check is
/// not merged into: the write fails with <see cref="CorruptBlockException"/>, and the replicated volume
/// repairs the block from the peer and writes again.</para>
/// <para><b>A store that fails part-way</b> (EIO, or ENOSPC after a short write) leaves its blocks marked
/// unverified: see <c>StoragePool.MarkUnverified</c>.</para>
/// <para><b>Reads</b> take no lock. A block that fails its check is read again with its checksum under
/// the block's exclusive lock, which no write of that block holds: a read that raced a write (new data,
/// old checksum) then sees one write's data and checksum and passes; a failure found there is real and
/// is reported to the caller, which repairs it or fails the read.</para>
/// </remarks>
public sealed partial class ThinVolume
{
    private const int Block = BlockChecksum.BlockSize;
    private const int StackSlotBytes = 512;

    /// <summary>
    /// Reads the range and checks every block it touches. Blocks that fail are added to <paramref name="damaged"/>
    /// (their bytes in <paramref name="destination"/> are what the disk returned); a block-aligned read may ask for
    /// each block's checksum in <paramref name="checksums"/> (8 bytes per block; holes get the checksum of zeros).
    /// </summary>
    internal void ReadBlocks(long offset, Span<byte> destination, Span<byte> checksums, List<DamagedBlock>? damaged)
    {
        CheckRange(offset, destination.Length);
        if (destination.IsEmpty)
        {
            return;
        }

        var first = offset / UnitSize;
        var units = (int)(((offset + destination.Length - 1) / UnitSize) - first + 1);
        long[]? rented = null;
        var extents = units <= StackUnits ? stackalloc long[units] : (rented = ArrayPool<long>.Shared.Rent(units)).AsSpan(0, units);
        extents.Fill(StoragePool.NoExtent);
        try
        {
            _pool.PinMapped(State, first, extents);
            for (var i = 0; i < units;)
            {
                var hole = extents[i] == StoragePool.NoExtent;
                var run = hole ? HoleRun(extents, i) : _pool.ContiguousRun(extents, i);
                var runStart = Math.Max(offset, (first + i) * UnitSize);
                var runEnd = Math.Min(offset + destination.Length, (first + i + run) * UnitSize);
                var slice = destination.Slice((int)(runStart - offset), (int)(runEnd - runStart));
                var sums = checksums.IsEmpty ? default : checksums.Slice(BlockChecksum.BytesFor((int)(runStart - offset)), BlockChecksum.BytesFor(slice.Length));
                var within = runStart - ((first + i) * UnitSize);
                if (hole)
                {
                    slice.Clear();
                    for (var b = 0; b < sums.Length / BlockChecksum.Size; b++)
                    {
                        BlockChecksum.Set(sums, b, BlockChecksum.Zeros);
                    }
                }
                else if (!_pool.BlockChecksums)
                {
                    _pool.ReadData(extents[i], within, slice);
                    if (!sums.IsEmpty)
                    {
                        BlockChecksum.Compute(slice, sums);
                    }
                }
                else
                {
                    ReadChecked(extents[i], within, runStart, slice, sums, damaged);
                }

                i += run;
            }
        }
        catch (IOException e) when (e is not BlockDeviceException)
        {
            throw Translate(e, "reading");
        }
        finally
        {
            _pool.Unpin(extents);
            if (rented is not null)
            {
                ArrayPool<long>.Shared.Return(rented);
            }
        }
    }

    /// <summary>Writes the range; <paramref name="checksums"/> is empty or holds one checksum per block of a block-aligned write.</summary>
    internal void WriteBlocks(long offset, ReadOnlySpan<byte> data, ReadOnlySpan<byte> checksums)
    {
        CheckRange(offset, data.Length);
        if (data.IsEmpty)
        {
            return;
        }

        if (!checksums.IsEmpty && (!BlockChecksum.IsAligned(offset, data.Length) || checksums.Length != BlockChecksum.BytesFor(data.Length)))
        {
            throw new ArgumentException($"checksums of {checksums.Length} bytes do not fit a write of {data.Length} bytes at {offset}", nameof(checksums));
        }

        var first = offset / UnitSize;
        var units = (int)(((offset + data.Length - 1) / UnitSize) - first + 1);
        long[]? rented = null;
        var extents = units <= StackUnits ? stackalloc long[units] : (rented = ArrayPool<long>.Shared.Rent(units)).AsSpan(0, units);
        extents.Fill(StoragePool.NoExtent);
        try
        {
            _pool.PinForWrite(State, first, extents);
            for (var i = 0; i < units;)
            {
                var run = _pool.ContiguousRun(extents, i);
                var runStart = Math.Max(offset, (first + i) * UnitSize);
                var runEnd = Math.Min(offset + data.Length, (first + i + run) * UnitSize);
                var slice = data.Slice((int)(runStart - offset), (int)(runEnd - runStart));
                var within = runStart - ((first + i) * UnitSize);
                if (_pool.BlockChecksums)
                {
                    var sums = checksums.IsEmpty ? default : checksums.Slice(BlockChecksum.BytesFor((int)(runStart - offset)), BlockChecksum.BytesFor(slice.Length));
                    WriteChecked(extents[i], within, runStart, slice, sums);
                }
                else
                {
                    _pool.WriteData(extents[i], within, slice);
                }

                i += run;
            }
        }
        catch (IOException e) when (e is not BlockDeviceException)
        {
            throw Translate(e, "writing");
        }
        finally
        {
            _pool.Unpin(extents);
            if (rented is not null)
            {
                ArrayPool<long>.Shared.Return(rented);
            }
        }
    }

    /// <summary>Makes [<paramref name="within"/>, +<paramref name="length"/>) of one extent read as zeros, checksums included.</summary>
    private void ZeroInExtent(long extent, long within, long length, long unitStart)
    {
        if (!_pool.BlockChecksums)
        {
            _pool.ZeroData(extent, within, length);
            return;
        }

        var end = within + length;
        var wholeStart = AlignUp(within);
        var wholeEnd = AlignDown(end);
        if (wholeStart > within)
        {
            MergeIntoBlock(extent, AlignDown(within), (int)(within - AlignDown(within)), default, (int)(Math.Min(end, wholeStart) - within), unitStart);
        }

        if (wholeEnd > wholeStart)
        {
            using (_pool.Guard.EnterShared(_pool.PoolBlock(extent, wholeStart), (wholeEnd - wholeStart) >> BlockChecksum.BlockShift))
            {
                try
                {
                    _pool.ZeroData(extent, wholeStart, wholeEnd - wholeStart);
                    _pool.ClearChecksums(extent, wholeStart, wholeEnd - wholeStart);
                }
                catch (IOException)
                {
                    _pool.MarkUnverified(extent, wholeStart, wholeEnd - wholeStart);
                    throw;
                }
            }
        }

        if (end > wholeEnd && wholeEnd >= wholeStart)
        {
            MergeIntoBlock(extent, wholeEnd, 0, default, (int)(end - wholeEnd), unitStart);
        }
    }

    /// <summary>One run of consecutive extents of a write: ragged ends merged into their blocks, whole blocks written with their checksums.</summary>
    private void WriteChecked(long extent, long within, long volumeStart, ReadOnlySpan<byte> data, ReadOnlySpan<byte> checksums)
    {
        var end = within + data.Length;
        var wholeStart = AlignUp(within);
        var wholeEnd = AlignDown(end);
        var unitStart = volumeStart - within;
        if (wholeStart > within)
        {
            var head = (int)(Math.Min(end, wholeStart) - within);
            MergeIntoBlock(extent, AlignDown(within), (int)(within - AlignDown(within)), data[..head], head, unitStart);
        }

        if (wholeEnd > wholeStart)
        {
            var whole = data.Slice((int)(wholeStart - within), (int)(wholeEnd - wholeStart));
            if (!checksums.IsEmpty)
            {
                WriteWholeBlocks(extent, wholeStart, whole, checksums);
            }
            else
            {
                var bytes = BlockChecksum.BytesFor(whole.Length);
                byte[]? rented = null;
                var sums = bytes <= StackSlotBytes ? stackalloc byte[bytes] : (rented = ArrayPool<byte>.Shared.Rent(bytes)).AsSpan(0, bytes);
                try
                {
                    BlockChecksum.Compute(whole, sums);
                    WriteWholeBlocks(extent, wholeStart, whole, sums);
                }
                finally
                {
                    if (rented is not null)
                    {
                        ArrayPool<byte>.Shared.Return(rented);
                    }
                }
            }
        }

        if (end > wholeEnd && wholeEnd >= wholeStart)
        {
            MergeIntoBlock(extent, wholeEnd, 0, data[(int)(wholeEnd - within)..], (int)(end - wholeEnd), unitStart);
        }
    }

    /// <summary>Writes whole blocks, then their checksums, with their stripes held shared.</summary>
    private void WriteWholeBlocks(long extent, long blockWithin, ReadOnlySpan<byte> data, ReadOnlySpan<byte> checksums)
    {
        using (_pool.Guard.EnterShared(_pool.PoolBlock(extent, blockWithin), data.Length >> BlockChecksum.BlockShift))
        {
            try
            {
                _pool.WriteData(extent, blockWithin, data);
                _pool.WriteChecksums(extent, blockWithin, checksums);
            }
            catch (IOException)
            {
                _pool.MarkUnverified(extent, blockWithin, data.Length);
                throw;
            }
        }
    }

    /// <summary>
    /// Writes <paramref name="count"/> bytes at <paramref name="at"/> into the block at <paramref name="blockWithin"/> of an
    /// extent: <paramref name="bytes"/>, or zeros when it is empty. The block is read and checked first, under its
    /// exclusive lock; a block that fails its check is left as it is (<see cref="CorruptBlockException"/>).
    /// </summary>
    private void MergeIntoBlock(long extent, long blockWithin, int at, ReadOnlySpan<byte> bytes, int count, long unitStart)
    {
        Span<byte> block = stackalloc byte[Block];
        Span<byte> slot = stackalloc byte[BlockChecksum.Size];
        using (_pool.Guard.EnterExclusive(_pool.PoolBlock(extent, blockWithin)))
        {
            _pool.ReadData(extent, blockWithin, block);
            _pool.ReadChecksums(extent, blockWithin, slot);
            var status = BlockChecksum.Check(block, BlockChecksum.Get(slot, 0), out _);
            if (status == BlockStatus.Bad)
            {
                throw Corrupt(new DamagedBlock(unitStart + blockWithin, status), "writing part of it");
            }

            // An unverified block (see RecheckAfterCrash) is accepted as it is: the write makes it verified.
            if (bytes.IsEmpty)
            {
                block.Slice(at, count).Clear();
            }
            else
            {
                bytes[..count].CopyTo(block[at..]);
            }

            try
            {
                if (!block.ContainsAnyExcept((byte)0))
                {
                    _pool.ZeroData(extent, blockWithin, Block);
                    _pool.ClearChecksums(extent, blockWithin, Block);
                    return;
                }

                BlockChecksum.Set(slot, 0, BlockChecksum.Of(block));
                _pool.WriteData(extent, blockWithin, block);
                _pool.WriteChecksums(extent, blockWithin, slot);
            }
            catch (IOException)
            {
                _pool.MarkUnverified(extent, blockWithin, Block);
                throw;
            }
        }
    }

    /// <summary>
    /// Reads one run of consecutive extents into <paramref name="slice"/> and checks every block it touches: whole
    /// blocks in place, the ragged ends of an unaligned read through a block-sized scratch buffer.
    /// </summary>
    private void ReadChecked(long extent, long within, long volumeStart, Span<byte> slice, Span<byte> checksums, List<DamagedBlock>? damaged)
    {
        var end = within + slice.Length;
        var blockStart = AlignDown(within);
        var blocks = (int)((AlignUp(end) - blockStart) >> BlockChecksum.BlockShift);
        var unitStart = volumeStart - within;
        var slotBytes = blocks * BlockChecksum.Size;
        byte[]? rented = null;
        var slots = slotBytes <= StackSlotBytes ? stackalloc byte[slotBytes] : (rented = ArrayPool<byte>.Shared.Rent(slotBytes)).AsSpan(0, slotBytes);
        Span<byte> head = stackalloc byte[Block];
        Span<byte> tail = stackalloc byte[Block];
        try
        {
            _pool.ReadChecksums(extent, blockStart, slots);
            // Only the first and the last block can stick out of the slice; those go through a scratch block.
            var headPartial = blockStart < within || end < blockStart + Block;
            var tailPartial = blocks > 1 && (end & (Block - 1)) != 0;
            var wholeStart = headPartial ? blockStart + Block : blockStart;
            var wholeEnd = AlignDown(end);
            if (headPartial)
            {
                _pool.ReadData(extent, blockStart, head);
            }

            if (wholeEnd > wholeStart)
            {
                _pool.ReadData(extent, wholeStart, slice.Slice((int)(wholeStart - within), (int)(wholeEnd - wholeStart)));
            }

            if (tailPartial)
            {
                _pool.ReadData(extent, AlignDown(end), tail);
            }

            for (var b = 0; b < blocks; b++)
            {
                var at = blockStart + ((long)b << BlockChecksum.BlockShift);
                var block = b == 0 && headPartial ? head
                    : b == blocks - 1 && tailPartial ? tail
                    : slice.Slice((int)(at - within), Block);
                var status = BlockChecksum.Check(block, BlockChecksum.Get(slots, b), out var computed);
                if (status != BlockStatus.Good)
                {
                    status = Confirm(extent, at, block, out computed);
                    if (status != BlockStatus.Good)
                    {
                        damaged?.Add(new DamagedBlock(unitStart + at, status));
                    }
                }

                if (!checksums.IsEmpty)
                {
                    BlockChecksum.Set(checksums, b, computed);
                }
            }

            if (headPartial)
            {
                head.Slice((int)(within - blockStart), (int)(Math.Min(end, blockStart + Block) - within)).CopyTo(slice);
            }

            if (tailPartial)
            {
                tail[..(int)(end - AlignDown(end))].CopyTo(slice[(int)(AlignDown(end) - within)..]);
            }
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>Reads a block that failed its check again, with its checksum, where no write of it can be in progress.</summary>
    private BlockStatus Confirm(long extent, long blockWithin, Span<byte> block, out ulong computed)
    {
        Span<byte> slot = stackalloc byte[BlockChecksum.Size];
        using (_pool.Guard.EnterExclusive(_pool.PoolBlock(extent, blockWithin)))
        {
            _pool.ReadData(extent, blockWithin, block);
            _pool.ReadChecksums(extent, blockWithin, slot);
        }

        return BlockChecksum.Check(block, BlockChecksum.Get(slot, 0), out computed);
    }

    private static long AlignDown(long value) => value & ~(long)(Block - 1);

    private static long AlignUp(long value) => (value + Block - 1) & ~(long)(Block - 1);
}

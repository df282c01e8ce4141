using System.Buffers;
using Replicator.Core.Devices;
using Replicator.Core.Hashing;
using Replicator.Core.Metadata;
using Replicator.Core.Pool;

namespace Replicator.Core.Volumes;

/// <summary>
/// A thin-provisioned volume in the node's pool: a virtual size cut into allocation units that
/// get a pool extent on first write. Unwritten and trimmed units read as zeros and take no space.
/// </summary>
/// <remarks>
/// The data path is synchronous (pread/pwrite on the pool files) behind the asynchronous
/// <see cref="IBlockDevice"/> signature: callers run requests on worker threads. Each request
/// pins its extents for as long as it moves data (see <see cref="StoragePool"/>), and runs of
/// consecutive extents are moved with one call each. Every 4 KiB block is stored with its checksum
/// and checked when read (see ThinVolume.Blocks.cs).
/// </remarks>
public sealed partial class ThinVolume : IBlockDevice
{
    private const int StackUnits = 64;

    private readonly StoragePool _pool;

    internal ThinVolume(StoragePool pool, VolumeState state)
    {
        _pool = pool;
        State = state;
    }

    public Guid Id => State.Id;

    public string Name => State.Name;

    public long Size => State.Size;

    /// <summary>The allocation unit: the pool's extent size.</summary>
    public int UnitSize => _pool.ExtentSize;

    /// <summary>Bytes of pool space this volume holds.</summary>
    public long AllocatedBytes => _pool.AllocatedBytesOf(State);

    public DeviceFeatures Features => DeviceFeatures.AllWritable;

    public bool IsDeleted { get; private set; }

    internal VolumeState State { get; }

    /// <summary>Whether blocks are stored with checksums and checked on read (see <see cref="StoragePool.BlockChecksums"/>).</summary>
    public bool BlockChecksums => _pool.BlockChecksums;

    /// <summary>Reads the range; a block that fails its checksum fails the read (nothing here can repair it).</summary>
    public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        var damaged = new List<DamagedBlock>();
        ReadBlocks(offset, destination.Span, default, damaged);
        if (damaged.Count > 0)
        {
            throw Corrupt(damaged[0], "reading");
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, IoFlags flags, CancellationToken cancellationToken = default) =>
        WriteAsync(offset, source, default, flags);

    /// <summary>
    /// Writes with the blocks' checksums already computed (<paramref name="checksums"/>: one per block of a
    /// block-aligned write, checked against the data where they came from; empty to compute them here).
    /// </summary>
    internal ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, ReadOnlyMemory<byte> checksums, IoFlags flags)
    {
        WriteBlocks(offset, source.Span, checksums.Span);
        FlushIfFua(flags);
        return ValueTask.CompletedTask;
    }

    public ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            _pool.Flush();
        }
        catch (IOException e) when (e is not BlockDeviceException)
        {
            throw Translate(e, "flushing");
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask TrimAsync(long offset, long length, IoFlags flags, CancellationToken cancellationToken = default)
    {
        CheckRange(offset, length);
        FreeRange(offset, length);
        FlushIfFua(flags);
        return ValueTask.CompletedTask;
    }

    public ValueTask WriteZeroesAsync(long offset, long length, IoFlags flags, CancellationToken cancellationToken = default)
    {
        CheckRange(offset, length);
        if ((flags & IoFlags.NoHole) == 0)
        {
            FreeRange(offset, length);
        }
        else
        {
            // Keep (or take) the space: every unit gets an extent, and the range is zeroed inside them.
            var step = 64L * UnitSize;
            for (var done = 0L; done < length; done += step)
            {
                ZeroAllocated(offset + done, Math.Min(step, length - done));
            }
        }

        FlushIfFua(flags);
        return ValueTask.CompletedTask;
    }

    public ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        CheckRange(offset, length);
        return ValueTask.CompletedTask;
    }

    public ValueTask<IReadOnlyList<AllocationExtent>> GetAllocationAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        CheckRange(offset, length);
        return ValueTask.FromResult(_pool.DescribeAllocation(State, offset, length));
    }

    internal void MarkDeleted() => IsDeleted = true;

    /// <summary>Frees the whole units in the range and zeroes the covered part of partial units that hold data.</summary>
    private void FreeRange(long offset, long length)
    {
        if (length == 0)
        {
            return;
        }

        var end = offset + length;
        var firstWhole = (offset + UnitSize - 1) / UnitSize;
        var endWhole = end / UnitSize;
        try
        {
            if (endWhole > firstWhole)
            {
                _pool.UnmapUnits(State, firstWhole, endWhole - firstWhole);
                ZeroMapped(offset, (firstWhole * UnitSize) - offset);
                ZeroMapped(endWhole * UnitSize, end - (endWhole * UnitSize));
            }
            else
            {
                ZeroMapped(offset, length);
            }
        }
        catch (IOException e) when (e is not BlockDeviceException)
        {
            throw Translate(e, "trimming");
        }
    }

    /// <summary>Zeroes a range within at most two units, touching only units that are mapped.</summary>
    private void ZeroMapped(long offset, long length)
    {
        if (length <= 0)
        {
            return;
        }

        var first = offset / UnitSize;
        var units = (int)(((offset + length - 1) / UnitSize) - first + 1);
        Span<long> extents = stackalloc long[units];
        extents.Fill(StoragePool.NoExtent);
        try
        {
            _pool.PinMapped(State, first, extents);
            ZeroExtents(offset, length, first, extents);
        }
        finally
        {
            _pool.Unpin(extents);
        }
    }

    /// <summary>Allocates every unit of the range (at most 64 units) and zeroes the range.</summary>
    private void ZeroAllocated(long offset, long length)
    {
        var first = offset / UnitSize;
        var units = (int)(((offset + length - 1) / UnitSize) - first + 1);
        Span<long> extents = stackalloc long[units];
        extents.Fill(StoragePool.NoExtent);
        try
        {
            _pool.PinForWrite(State, first, extents);
            ZeroExtents(offset, length, first, extents);
        }
        catch (IOException e) when (e is not BlockDeviceException)
        {
            throw Translate(e, "zeroing");
        }
        finally
        {
            _pool.Unpin(extents);
        }
    }

    private void ZeroExtents(long offset, long length, long first, ReadOnlySpan<long> extents)
    {
        for (var i = 0; i < extents.Length; i++)
        {
            if (extents[i] == StoragePool.NoExtent)
            {
                continue;
            }

            var unitStart = (first + i) * UnitSize;
            var start = Math.Max(offset, unitStart);
            var stop = Math.Min(offset + length, unitStart + UnitSize);
            ZeroInExtent(extents[i], start - unitStart, stop - start, unitStart);
        }
    }

    private void FlushIfFua(IoFlags flags)
    {
        if ((flags & IoFlags.Fua) != 0)
        {
            FlushAsync().GetAwaiter().GetResult();
        }
    }

    private void CheckRange(long offset, long length)
    {
        if (IsDeleted)
        {
            throw new BlockDeviceException(StorageError.Shutdown, $"volume '{Name}' has been deleted");
        }

        if (offset < 0 || length < 0 || offset > Size - length)
        {
            throw new BlockDeviceException(StorageError.OutOfRange,
                $"range [{offset}, {offset}+{length}) is outside volume '{Name}' of {Size} bytes");
        }
    }

    private static int HoleRun(ReadOnlySpan<long> extents, int first)
    {
        var n = 1;
        while (first + n < extents.Length && extents[first + n] == StoragePool.NoExtent)
        {
            n++;
        }

        return n;
    }

    private CorruptBlockException Corrupt(DamagedBlock block, string doing) => new(block.Offset, block.Status, block.Status == BlockStatus.Bad
        ? $"volume '{Name}': the 4 KiB block at {block.Offset} fails its checksum while {doing}: the disk returned wrong data"
        : $"volume '{Name}': the 4 KiB block at {block.Offset} was being written when the node crashed and is not vouched for");

    private BlockDeviceException Translate(IOException e, string doing) => BlockDeviceException.FromIOException(e, $"{doing} volume '{Name}'");
}

using Microsoft.Extensions.Logging.Abstractions;
using Replicator.Core.Devices;
using Replicator.Core.Pool;
using Replicator.Core.Storage;
using Replicator.Core.Volumes;

namespace Replicator.Core.Tests.Pool;

public sealed class ThinVolumeTests : IDisposable
{
    private const int Unit = 64 * 1024;
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData(0, 4096)]
    [InlineData(512, 100)]
    [InlineData(Unit - 10, 20)]
    [InlineData(3 * Unit + 7, 5 * Unit + 13)]
    public async Task Written_bytes_read_back_and_the_rest_reads_as_zeros(long offset, int length)
    {
        using var pool = NewDiskPool();
        var volume = pool.CreateVolume("v", 16L * Unit);
        var data = Pattern(length, seed: 1);
        await volume.WriteAsync(offset, data, IoFlags.None);

        var all = new byte[volume.Size];
        await volume.ReadAsync(0, all);
        Assert.Equal(data, all.AsSpan((int)offset, length).ToArray());
        Assert.True(all.AsSpan(0, (int)offset).IndexOfAnyExcept((byte)0) < 0);
        Assert.True(all.AsSpan((int)offset + length).IndexOfAnyExcept((byte)0) < 0);
    }

    [Fact]
    public async Task Space_is_taken_only_for_written_units_and_holes_are_reported()
    {
        using var pool = NewDiskPool();
        var volume = pool.CreateVolume("v", 1L << 30);
        Assert.Equal(0, volume.AllocatedBytes);
        Assert.Equal([new AllocationExtent(1L << 30, AllocationState.Hole | AllocationState.Zero)], await volume.GetAllocationAsync(0, 1L << 30));

        await volume.WriteAsync(Unit + 100, Pattern(10, 2), IoFlags.None);
        Assert.Equal(Unit, volume.AllocatedBytes);
        Assert.Equal(
            [
                new AllocationExtent(Unit, AllocationState.Hole | AllocationState.Zero),
                new AllocationExtent(Unit, AllocationState.Data),
                new AllocationExtent((1L << 30) - (2 * Unit), AllocationState.Hole | AllocationState.Zero),
            ],
            await volume.GetAllocationAsync(0, 1L << 30));
        Assert.Equal([new AllocationExtent(50, AllocationState.Data)], await volume.GetAllocationAsync(Unit + 10, 50));
        Assert.Equal(Unit, pool.Usage.Allocated);
        Assert.Equal(1L << 30, pool.Usage.Virtual);
    }

    [Fact]
    public async Task Trim_frees_whole_units_and_zeroes_partial_ones()
    {
        using var pool = NewDiskPool();
        var volume = pool.CreateVolume("v", 8L * Unit);
        await volume.WriteAsync(0, Pattern(4 * Unit, 3), IoFlags.None);
        Assert.Equal(4L * Unit, volume.AllocatedBytes);

        // Covers the second half of unit 0, units 1 and 2 whole, and the first 100 bytes of unit 3.
        await volume.TrimAsync(Unit / 2, (Unit / 2) + (2 * Unit) + 100, IoFlags.None);
        Assert.Equal(2L * Unit, volume.AllocatedBytes);

        var all = new byte[4 * Unit];
        await volume.ReadAsync(0, all);
        var expected = Pattern(4 * Unit, 3);
        expected.AsSpan(Unit / 2, (Unit / 2) + (2 * Unit) + 100).Clear();
        Assert.Equal(expected, all);
        var map = await volume.GetAllocationAsync(0, 4L * Unit);
        Assert.Equal(new AllocationExtent(Unit, AllocationState.Data), map[0]);
        Assert.Equal(new AllocationExtent(2 * Unit, AllocationState.Hole | AllocationState.Zero), map[1]);
    }

    [Fact]
    public async Task Write_zeroes_with_no_hole_keeps_space_and_without_it_frees_space()
    {
        using var pool = NewDiskPool();
        var volume = pool.CreateVolume("v", 8L * Unit);
        await volume.WriteAsync(0, Pattern(4 * Unit, 4), IoFlags.None);

        await volume.WriteZeroesAsync(0, 2L * Unit, IoFlags.NoHole);
        Assert.Equal(4L * Unit, volume.AllocatedBytes);
        await volume.WriteZeroesAsync(6L * Unit, Unit, IoFlags.NoHole);
        Assert.Equal(5L * Unit, volume.AllocatedBytes);

        await volume.WriteZeroesAsync(2L * Unit, 2L * Unit, IoFlags.None);
        Assert.Equal(3L * Unit, volume.AllocatedBytes);

        var all = new byte[volume.Size];
        await volume.ReadAsync(0, all);
        Assert.True(all.AsSpan().IndexOfAnyExcept((byte)0) < 0);
    }

    [Fact]
    public async Task A_full_pool_fails_new_allocations_with_no_space_and_changes_nothing()
    {
        using var pool = NewDiskPool(capacity: 4L * Unit);
        var volume = pool.CreateVolume("v", 64L * Unit);
        var data = Pattern(3 * Unit, 5);
        await volume.WriteAsync(0, data, IoFlags.None);

        // Needs two new units, only one is free: nothing may be allocated or written.
        var e = await Assert.ThrowsAsync<BlockDeviceException>(async () => await volume.WriteAsync(3L * Unit, Pattern(2 * Unit, 6), IoFlags.None));
        Assert.Equal(StorageError.NoSpace, e.Error);
        Assert.Equal(3L * Unit, volume.AllocatedBytes);
        var tail = new byte[2 * Unit];
        await volume.ReadAsync(3L * Unit, tail);
        Assert.True(tail.AsSpan().IndexOfAnyExcept((byte)0) < 0);

        // Overwriting what is already allocated still works, and so does filling the last unit.
        await volume.WriteAsync(0, Pattern(Unit, 7), IoFlags.None);
        await volume.WriteAsync(3L * Unit, Pattern(Unit, 8), IoFlags.None);
        Assert.Equal(0, pool.Usage.Free);
    }

    [Fact]
    public async Task Trimmed_space_is_reused_after_a_flush_and_never_shows_old_data()
    {
        using var pool = NewDiskPool(capacity: 2L * Unit);
        var a = pool.CreateVolume("a", 4L * Unit);
        var b = pool.CreateVolume("b", 4L * Unit);
        await a.WriteAsync(0, Pattern(2 * Unit, 9), IoFlags.None);
        await a.TrimAsync(0, 2L * Unit, IoFlags.None);

        // The pool is full of freed-but-not-yet-durable extents; the write forces the flush itself.
        await b.WriteAsync(100, Pattern(10, 10), IoFlags.None);
        var unit = new byte[Unit];
        await b.ReadAsync(0, unit);
        Assert.Equal(Pattern(10, 10), unit.AsSpan(100, 10).ToArray());
        unit.AsSpan(100, 10).Clear();
        Assert.True(unit.AsSpan().IndexOfAnyExcept((byte)0) < 0);
    }

    [Fact]
    public async Task An_extent_freed_while_an_io_holds_it_is_not_handed_out_until_released()
    {
        using var pool = NewDiskPool(capacity: 2L * Unit);
        var a = pool.CreateVolume("a", 4L * Unit);
        var b = pool.CreateVolume("b", 4L * Unit);
        await a.WriteAsync(0, Pattern(Unit, 11), IoFlags.None);

        var held = new long[1];
        pool.PinMapped(a.State, 0, held);
        await a.TrimAsync(0, Unit, IoFlags.None);
        pool.Flush();

        await b.WriteAsync(0, Pattern(Unit, 12), IoFlags.None);
        var e = await Assert.ThrowsAsync<BlockDeviceException>(async () => await b.WriteAsync(Unit, Pattern(Unit, 13), IoFlags.None));
        Assert.Equal(StorageError.NoSpace, e.Error);

        pool.Unpin(held);
        await b.WriteAsync(Unit, Pattern(Unit, 13), IoFlags.None);
        var check = new byte[Unit];
        await b.ReadAsync(0, check);
        Assert.Equal(Pattern(Unit, 12), check);
    }

    [Fact]
    public async Task Out_of_range_requests_are_refused_without_touching_data()
    {
        using var pool = NewDiskPool();
        var volume = pool.CreateVolume("v", 4L * Unit);
        foreach (var (offset, length) in new[] { (-1L, 1), (4L * Unit, 1), ((4L * Unit) - 1, 2), (long.MaxValue, 1) })
        {
            var e = await Assert.ThrowsAsync<BlockDeviceException>(async () => await volume.WriteAsync(offset, new byte[length], IoFlags.None));
            Assert.Equal(StorageError.OutOfRange, e.Error);
            e = await Assert.ThrowsAsync<BlockDeviceException>(async () => await volume.TrimAsync(offset, length, IoFlags.None));
            Assert.Equal(StorageError.OutOfRange, e.Error);
        }

        Assert.Equal(0, volume.AllocatedBytes);
    }

    [Fact]
    public async Task Data_and_maps_survive_a_reopen_and_a_process_crash()
    {
        var poolDir = Path.Combine(_dir.Path, "pool");
        var crashCopy = Path.Combine(_dir.Path, "crash");
        using (var pool = StoragePool.Create(PhysicalFileSystem.Instance, poolDir, new PoolOptions { FileCapacity = 64L * Unit }, NullLogger.Instance))
        {
            var volume = pool.CreateVolume("v", 32L * Unit);
            await volume.WriteAsync(0, Pattern(3 * Unit, 14), IoFlags.None);
            pool.Flush();
            await volume.WriteAsync(10L * Unit, Pattern(Unit, 15), IoFlags.None);
            await volume.TrimAsync(Unit, Unit, IoFlags.None);

            // Copying the files now is what a kill -9 leaves: written but neither flushed nor checkpointed.
            Directory.CreateDirectory(crashCopy);
            foreach (var file in Directory.GetFiles(poolDir).Where(f => !f.EndsWith(".lock", StringComparison.Ordinal)))
            {
                File.Copy(file, Path.Combine(crashCopy, Path.GetFileName(file)));
            }
        }

        foreach (var dir in new[] { poolDir, crashCopy })
        {
            using var pool = StoragePool.Open(PhysicalFileSystem.Instance, dir, NullLogger.Instance);
            var volume = pool.Find("v")!;

            // Block checksums not written back before the kill lie where the activity log points; the node checks those at start.
            volume.RecheckAfterCrash([(Unit, Unit), (10L * Unit, Unit)], settle: true);
            var expected = new byte[32 * Unit];
            Pattern(3 * Unit, 14).CopyTo(expected, 0);
            expected.AsSpan(Unit, Unit).Clear();
            Pattern(Unit, 15).CopyTo(expected, 10 * Unit);
            var actual = new byte[32 * Unit];
            await volume.ReadAsync(0, actual);
            Assert.Equal(expected, actual);
            Assert.Equal(3L * Unit, volume.AllocatedBytes);
        }
    }

    [Fact]
    public void A_second_process_cannot_open_a_pool_in_use()
    {
        var poolDir = Path.Combine(_dir.Path, "pool");
        using var pool = StoragePool.Create(PhysicalFileSystem.Instance, poolDir, new PoolOptions { FileCapacity = 4L * Unit }, NullLogger.Instance);
        var e = Assert.Throws<IOException>(() => StoragePool.Open(PhysicalFileSystem.Instance, poolDir, NullLogger.Instance));
        Assert.Contains("in use", e.Message);
    }

    [Fact]
    public async Task Deleting_a_volume_frees_its_space_and_its_name()
    {
        using var pool = NewDiskPool();
        var volume = pool.CreateVolume("v", 8L * Unit);
        await volume.WriteAsync(0, Pattern(4 * Unit, 16), IoFlags.None);
        pool.DeleteVolume(volume);
        Assert.Equal(0, pool.Usage.Allocated);
        Assert.Null(pool.Find("v"));
        var e = await Assert.ThrowsAsync<BlockDeviceException>(async () => await volume.ReadAsync(0, new byte[1]));
        Assert.Equal(StorageError.Shutdown, e.Error);
        var again = pool.CreateVolume("v", 8L * Unit);
        var buffer = new byte[4 * Unit];
        await again.ReadAsync(0, buffer);
        Assert.True(buffer.AsSpan().IndexOfAnyExcept((byte)0) < 0);
    }

    [Fact]
    public void Bad_names_and_sizes_are_refused()
    {
        using var pool = NewDiskPool();
        Assert.Throws<ArgumentException>(() => pool.CreateVolume("", 4096));
        Assert.Throws<ArgumentException>(() => pool.CreateVolume("../etc", 4096));
        Assert.Throws<ArgumentException>(() => pool.CreateVolume(new string('a', 65), 4096));
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.CreateVolume("v", 4095));
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.CreateVolume("v", 0));
        pool.CreateVolume("v", 4096);
        Assert.Throws<VolumeExistsException>(() => pool.CreateVolume("v", 4096));
        Assert.Equal(1, pool.Usage.Volumes);
    }

    [Fact]
    public async Task Growing_a_volume_keeps_its_data_and_shrinking_is_refused()
    {
        using var pool = NewDiskPool();
        var volume = pool.CreateVolume("v", 4L * Unit);
        await volume.WriteAsync(0, Pattern(100, 17), IoFlags.None);
        pool.ResizeVolume(volume, 8L * Unit);
        Assert.Equal(8L * Unit, volume.Size);
        await volume.WriteAsync(7L * Unit, Pattern(100, 18), IoFlags.None);
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.ResizeVolume(volume, 4L * Unit));
        var head = new byte[100];
        await volume.ReadAsync(0, head);
        Assert.Equal(Pattern(100, 17), head);
    }

    [Fact]
    public async Task Concurrent_writers_on_shared_units_never_lose_acknowledged_data()
    {
        using var pool = NewDiskPool();
        var volume = pool.CreateVolume("v", 64L * Unit);
        var tasks = Enumerable.Range(0, 16).Select(i => Task.Run(async () =>
        {
            for (var j = 0; j < 64; j++)
            {
                // Each writer owns every 16th 4 KiB block, so writers share units but not bytes.
                var offset = ((j * 16) + i) * 4096L;
                await volume.WriteAsync(offset, Pattern(4096, (i * 1000) + j), IoFlags.None);
            }
        })).ToArray();
        await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(30));

        for (var i = 0; i < 16; i++)
        {
            for (var j = 0; j < 64; j++)
            {
                var block = new byte[4096];
                await volume.ReadAsync(((j * 16) + i) * 4096L, block);
                Assert.Equal(Pattern(4096, (i * 1000) + j), block);
            }
        }
    }

    [Fact]
    public void An_empty_16_TiB_volume_costs_under_one_MiB()
    {
        using var pool = NewDiskPool();
        var before = GC.GetAllocatedBytesForCurrentThread();
        var volume = pool.CreateVolume("big", 16L << 40);
        var cost = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(16L << 40, volume.Size);
        Assert.True(cost < 1 << 20, $"creating the volume allocated {cost} bytes");
        Assert.Equal(0, volume.State.Map.PageBytes);
    }

    [Fact]
    public async Task Memory_backed_pools_behave_like_file_backed_ones()
    {
        using var pool = StoragePool.Create(new MemoryFileSystem(), "/pool", new PoolOptions { FileCapacity = 8L * Unit, ExtentSize = Unit }, NullLogger.Instance);
        var volume = pool.CreateVolume("m", 4L * Unit);
        await volume.WriteAsync(123, Pattern(Unit, 19), IoFlags.Fua);
        var back = new byte[Unit];
        await volume.ReadAsync(123, back);
        Assert.Equal(Pattern(Unit, 19), back);
    }

    internal static byte[] Pattern(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private StoragePool NewDiskPool(long capacity = 256L * Unit) =>
        StoragePool.Create(PhysicalFileSystem.Instance, Path.Combine(_dir.Path, "pool-" + Guid.NewGuid().ToString("N")), new PoolOptions { FileCapacity = capacity }, NullLogger.Instance);
}

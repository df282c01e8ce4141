using Microsoft.Extensions.Logging.Abstractions;
using Replicator.Core.Devices;
using Replicator.Core.Pool;
using Replicator.Core.Storage;
using Replicator.Core.Tests.Support.Faults;
using Replicator.Core.Volumes;
using static Replicator.Core.Tests.Pool.ThinVolumeTests;

namespace Replicator.Core.Tests.Faults;

/// <summary>The bugs the fault runs found in the pool, the journal and the replica files, one test each.</summary>
public sealed class StorageFaultTests
{
    private const int Unit = 64 << 10;

    [Fact]
    public async Task A_write_the_full_pool_refuses_fails_with_ENOSPC_and_leaves_the_pins_of_its_mapped_units_alone()
    {
        var files = new FaultFileSystem();
        using var pool = StoragePool.Create(files, "/pool", new PoolOptions { FileCapacity = 3L * Unit, ExtentSize = Unit }, NullLogger.Instance);
        var volume = pool.CreateVolume("v", 8L * Unit);
        await volume.WriteAsync(0, Pattern(Unit, 1), IoFlags.None);
        await volume.WriteAsync(2L * Unit, Pattern(Unit, 2), IoFlags.None);

        var full = await Assert.ThrowsAsync<BlockDeviceException>(() => volume.WriteAsync(0, Pattern(4 * Unit, 3), IoFlags.None).AsTask());

        Assert.Equal(StorageError.NoSpace, full.Error);
        Assert.Equal(Pattern(Unit, 1), await ReadAsync(volume, 0, Unit));
        await volume.WriteAsync(0, Pattern(Unit, 4), IoFlags.None);
        Assert.Equal(Pattern(Unit, 4), await ReadAsync(volume, 0, Unit));
    }

    [Fact]
    public void A_pool_whose_creation_a_power_loss_cut_short_can_be_created_again()
    {
        var options = new PoolOptions { FileCapacity = 8L * Unit, ExtentSize = Unit };
        for (var cut = 1; ; cut++)
        {
            var files = new FaultFileSystem();
            files.CutPowerAt(cut);
            try
            {
                StoragePool.Create(files, "/pool", options, NullLogger.Instance).Dispose();
                return;
            }
            catch (PowerCutException)
            {
            }

            files.PowerLoss();
            using var pool = StoragePool.Exists(files, "/pool")
                ? StoragePool.Open(files, "/pool", NullLogger.Instance)
                : StoragePool.Create(files, "/pool", options, NullLogger.Instance);
            Assert.Equal(8L * Unit, pool.Usage.Capacity);
        }
    }

    [Fact]
    public void Creating_a_pool_where_one_exists_is_refused_and_keeps_it()
    {
        var files = new FaultFileSystem();
        var options = new PoolOptions { FileCapacity = 8L * Unit, ExtentSize = Unit };
        using (var pool = StoragePool.Create(files, "/pool", options, NullLogger.Instance))
        {
            pool.CreateVolume("v", Unit);
        }

        Assert.Throws<IOException>(() => StoragePool.Create(files, "/pool", options, NullLogger.Instance));

        using var reopened = StoragePool.Open(files, "/pool", NullLogger.Instance);
        Assert.NotNull(reopened.Find("v"));
    }

    [Fact]
    public async Task A_delete_the_journal_refused_leaves_the_volume_whole_and_in_use()
    {
        var files = new FaultFileSystem();
        using var pool = StoragePool.Create(files, "/pool", new PoolOptions { FileCapacity = 8L * Unit, ExtentSize = Unit }, NullLogger.Instance);
        var volume = pool.CreateVolume("v", 4L * Unit);
        await volume.WriteAsync(Unit, Pattern(Unit, 5), IoFlags.None);
        files.FailNext(IoOperation.Write, Errno.EIO, p => p.Contains("/journal.", StringComparison.Ordinal));

        Assert.ThrowsAny<IOException>(() => pool.DeleteVolume(volume));

        Assert.Same(volume, pool.Find("v"));
        Assert.Equal(Pattern(Unit, 5), await ReadAsync(volume, Unit, Unit));
        pool.DeleteVolume(volume);
        Assert.Null(pool.Find("v"));
    }

    [Fact]
    public async Task A_volume_created_while_an_fsync_of_the_journal_fails_is_created_durably()
    {
        var files = new FaultFileSystem();
        var pool = StoragePool.Create(files, "/pool", new PoolOptions { FileCapacity = 8L * Unit, ExtentSize = Unit }, NullLogger.Instance);
        files.FailNext(IoOperation.Flush, Errno.EIO, p => p.Contains("/journal.", StringComparison.Ordinal));

        var volume = pool.CreateVolume("v", 4L * Unit);
        await volume.WriteAsync(0, Pattern(Unit, 6), IoFlags.Fua);
        files.PowerLoss();

        using var reopened = StoragePool.Open(files, "/pool", NullLogger.Instance);
        Assert.Equal(Pattern(Unit, 6), await ReadAsync(reopened.Find("v")!, 0, Unit));
    }

    [Fact]
    public async Task An_extent_freed_before_an_fsync_of_the_data_failed_never_shows_its_old_data_in_a_new_mapping_after_a_power_loss()
    {
        var (files, pool, first, second) = await OneExtentPoolAsync();
        await first.TrimAsync(0, Unit, IoFlags.None);
        files.FailNext(IoOperation.Flush, Errno.EIO, IsData);

        Assert.ThrowsAny<IOException>(pool.Flush);

        // Linux forgot the punched pages when that fsync failed; this one succeeds without writing them.
        pool.Flush();
        await AssertANewMappingHoldsOnlyItsOwnDataAsync(files, second);
    }

    [Fact]
    public async Task An_extent_partly_trimmed_before_an_fsync_of_the_data_failed_never_shows_its_old_data_in_a_new_mapping_after_a_power_loss()
    {
        var (files, pool, first, second) = await OneExtentPoolAsync();
        files.FailNext(IoOperation.Flush, Errno.EIO, IsData);
        await Assert.ThrowsAnyAsync<BlockDeviceException>(() => first.TrimAsync(0, Unit / 2, IoFlags.Fua).AsTask());

        // The punch of the whole extent skips the half the page cache holds as a hole already.
        await first.TrimAsync(0, Unit, IoFlags.Fua);
        pool.Flush();
        await AssertANewMappingHoldsOnlyItsOwnDataAsync(files, second);
    }

    [Fact]
    public async Task An_extent_freed_before_an_fsync_of_the_data_failed_is_safe_to_reuse_after_a_clean_restart()
    {
        var (files, pool, first, _) = await OneExtentPoolAsync();
        await first.TrimAsync(0, Unit, IoFlags.None);
        files.FailNext(IoOperation.Flush, Errno.EIO, IsData);
        Assert.ThrowsAny<IOException>(pool.Flush);
        pool.Dispose();

        // The new process punches every free extent at open; where the page cache already holds a hole, that changes nothing on the disk.
        var restarted = StoragePool.Open(files, "/pool", NullLogger.Instance);
        await AssertANewMappingHoldsOnlyItsOwnDataAsync(files, restarted.Find("b")!);
    }

    private static bool IsData(string path) => path.EndsWith(".img", StringComparison.Ordinal);

    /// <summary>A pool of one extent, which volume a holds (data durable); volume b's first write must get that extent when a frees it.</summary>
    private static async Task<(FaultFileSystem Files, StoragePool Pool, ThinVolume First, ThinVolume Second)> OneExtentPoolAsync()
    {
        var files = new FaultFileSystem();
        var pool = StoragePool.Create(files, "/pool", new PoolOptions { FileCapacity = Unit, ExtentSize = Unit }, NullLogger.Instance);
        var first = pool.CreateVolume("a", 4L * Unit);
        var second = pool.CreateVolume("b", 4L * Unit);
        await first.WriteAsync(0, Pattern(Unit, 7), IoFlags.Fua);
        return (files, pool, first, second);
    }

    /// <summary>Writes the last sector of <paramref name="volume"/>'s first unit (FUA), cuts the power, and checks that unit holds that sector and zeros.</summary>
    private static async Task AssertANewMappingHoldsOnlyItsOwnDataAsync(FaultFileSystem files, ThinVolume volume)
    {
        await volume.WriteAsync(Unit - 512, Pattern(512, 8), IoFlags.Fua);
        files.PowerLoss();

        using var reopened = StoragePool.Open(files, "/pool", NullLogger.Instance);
        var expected = new byte[Unit];
        Pattern(512, 8).CopyTo(expected, Unit - 512);
        Assert.Equal(expected, await ReadAsync(reopened.Find(volume.Name)!, 0, Unit));
    }

    private static async Task<byte[]> ReadAsync(IBlockDevice device, long offset, int length)
    {
        var buffer = new byte[length];
        await device.ReadAsync(offset, buffer);
        return buffer;
    }
}

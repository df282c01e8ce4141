using Microsoft.Extensions.Logging.Abstractions;
using Replicator.Core.Devices;
using Replicator.Core.Pool;
using Replicator.Core.Storage;
using Replicator.Core.Tests.Support.Faults;
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

    private static async Task<byte[]> ReadAsync(IBlockDevice device, long offset, int length)
    {
        var buffer = new byte[length];
        await device.ReadAsync(offset, buffer);
        return buffer;
    }
}

using Microsoft.Extensions.Logging.Abstractions;
using Replicator.Core.Devices;
using Replicator.Core.Replication;
using Replicator.Core.Tests.Support.Faults;

namespace Replicator.Core.Tests.Faults;

/// <summary>The bugs the fault runs found in the replica's files (bitmap, activity log, metadata), one test each.</summary>
public sealed class ReplicaFaultTests
{
    private const string Directory = "/replica";
    private const long Size = 16L << 20;
    private static readonly Guid Volume = Guid.NewGuid();

    [Fact]
    public async Task A_power_loss_at_any_step_of_a_clean_stop_keeps_the_mark_of_a_write_the_peer_lacks()
    {
        for (var cut = 1; ; cut++)
        {
            var files = NewFileSystem();
            var store = Create(files);
            var activity = await store.BeginActivityAsync(8192, 4096, CancellationToken.None);
            store.MarkOutOfSync(8192, 4096);
            store.EndActivity(activity);
            files.CutPowerAt(cut);
            var completed = false;
            try
            {
                store.CloseCleanly();
                completed = true;
            }
            catch (PowerCutException)
            {
            }

            files.PowerLoss();
            using var reopened = ReplicaStore.Open(files, Directory, Size, NullLogger.Instance);
            Assert.True(IsMarked(reopened, 8192, 4096), $"power cut at change {cut} of the clean stop: the write's region is not marked after the restart");
            if (completed)
            {
                Assert.False(reopened.Crashed);
                return;
            }
        }
    }

    [Fact]
    public void A_replica_whose_creation_a_power_loss_cut_short_can_be_created_again()
    {
        for (var cut = 1; ; cut++)
        {
            var files = NewFileSystem();
            files.CutPowerAt(cut);
            try
            {
                Create(files).Dispose();
                return;
            }
            catch (PowerCutException)
            {
            }

            files.PowerLoss();
            using var store = ReplicaStore.Exists(files, Directory)
                ? ReplicaStore.Open(files, Directory, Size, NullLogger.Instance)
                : Create(files);
            Assert.Equal(ReplicaDiskState.UpToDate, store.DiskState);
        }
    }

    [Fact]
    public void Creating_a_replica_where_one_exists_is_refused_and_keeps_it()
    {
        var files = NewFileSystem();
        Create(files).Dispose();

        Assert.Throws<IOException>(() => Create(files));

        using var store = ReplicaStore.Open(files, Directory, Size, NullLogger.Instance);
        Assert.Equal(GenerationIds.NewVolume, store.Generation);
    }

    [Theory]
    [InlineData(Errno.EIO, StorageError.Io, ReplicaStore.ActivityLogFileName)]
    [InlineData(Errno.ENOSPC, StorageError.NoSpace, ReplicaStore.ActivityLogFileName)]
    [InlineData(Errno.EIO, StorageError.Io, ReplicaStore.BitmapFileName)]
    [InlineData(Errno.ENOSPC, StorageError.NoSpace, ReplicaStore.BitmapFileName)]
    public async Task A_write_whose_activity_log_or_bitmap_update_fails_is_refused_with_the_error_a_client_can_act_on(int errno, StorageError expected, string file)
    {
        // One node each: the failure detaches the node's disk, and later writes are refused as detached.
        var node = SingleNode.Open(new FaultFileSystem(), EngineWorkload.Options, 1 << 20);
        var volume = node.CreateVolume("v", 1 << 20);
        node.Files.FailNext(IoOperation.Write, errno, p => p.EndsWith(file, StringComparison.Ordinal));

        var refused = await Assert.ThrowsAsync<BlockDeviceException>(() => volume.WriteAsync(0, new byte[4096], IoFlags.None).AsTask());

        Assert.Equal(expected, refused.Error);
        Assert.Contains(file, refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_write_whose_activity_log_update_failed_does_not_hold_its_extent_forever()
    {
        var files = NewFileSystem();
        var store = Create(files);
        files.FailNext(IoOperation.Flush, Errno.EIO, p => p.EndsWith(ReplicaStore.ActivityLogFileName, StringComparison.Ordinal));
        await Assert.ThrowsAnyAsync<IOException>(() => store.BeginActivityAsync(8192, 4096, CancellationToken.None).AsTask());

        store.CloseCleanly();
        store.Dispose();

        using var reopened = ReplicaStore.Open(files, Directory, Size, NullLogger.Instance);
        Assert.False(reopened.Crashed, "a clean stop left the extent of a write that never ran in the activity log");
    }

    [Fact]
    public async Task A_resize_whose_bitmap_refused_to_grow_leaves_the_volume_as_it_was_and_the_next_resize_makes_its_new_end_writable()
    {
        const long Unit = EngineWorkload.ExtentSize;
        var files = NewFileSystem();
        var node = SingleNode.Open(files, EngineWorkload.Options, checkpointThreshold: 1 << 20);
        var volume = node.CreateVolume("v", 4 * Unit);
        files.FailNext(IoOperation.Write, Errno.EIO, p => p.EndsWith(".bitmap", StringComparison.Ordinal));

        Assert.ThrowsAny<IOException>(() => node.ResizeVolume(volume, 8 * Unit));

        Assert.Equal(4 * Unit, volume.Size);
        await volume.WriteAsync(4 * Unit - 512, new byte[512], IoFlags.None);
        node.ResizeVolume(volume, 8 * Unit);
        await volume.WriteAsync(8 * Unit - 512, new byte[512], IoFlags.None);
        Assert.True(IsMarked(volume.Replica, 8 * Unit - 512, 512));
    }

    private static bool IsMarked(ReplicaStore store, long offset, long length)
    {
        for (var run = store.NextOutOfSyncRun(0, 1 << 20); run is { } r; run = store.NextOutOfSyncRun(r.Offset + r.Length, 1 << 20))
        {
            if (r.Offset <= offset && offset + length <= r.Offset + r.Length)
            {
                return true;
            }
        }

        return false;
    }

    private static FaultFileSystem NewFileSystem()
    {
        var files = new FaultFileSystem();
        files.CreateDirectory("/");
        return files;
    }

    private static ReplicaStore Create(FaultFileSystem files) =>
        ReplicaStore.Create(files, Directory, Volume, Size, GenerationIds.NewVolume, ReplicaDiskState.UpToDate, ReplicaFlags.None, NullLogger.Instance);
}

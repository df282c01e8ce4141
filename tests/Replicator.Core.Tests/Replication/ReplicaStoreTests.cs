using Microsoft.Extensions.Logging.Abstractions;
using Replicator.Core.Storage;
using Replicator.Core.Replication;
using Replicator.Core.Tests.Replication.Support;

namespace Replicator.Core.Tests.Replication;

/// <summary>The replica's files across restarts: a crash marks what the activity log names, a clean stop marks nothing.</summary>
public sealed class ReplicaStoreTests : IDisposable
{
    private const long Size = 64L << 20;
    private const long Extent = ActivityLog.DefaultExtentSize;
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task After_a_crash_the_extents_of_writes_in_flight_are_marked_at_open()
    {
        var store = Create();
        await store.BeginActivityAsync(5 * Extent + 100, 4096, CancellationToken.None);
        var done = await store.BeginActivityAsync(Extent - 10, 20, CancellationToken.None);
        store.EndActivity(done);
        store.Dispose();

        using var reopened = ReplicaStore.Open(PhysicalFileSystem.Instance, _dir.Path, Size, NullLogger.Instance);

        Assert.True(reopened.Crashed);
        Assert.Equal([(0L, 2 * Extent), (5 * Extent, Extent)], ReplicaData.MarkedRanges(reopened, Size));
    }

    [Fact]
    public async Task After_a_crash_the_extents_marked_only_by_the_activity_log_may_match_the_peer_and_those_changed_alone_do_not()
    {
        var store = Create();
        store.MarkOutOfSync(2 * Extent, 4096, store.GenerationForWritingAlone());
        await store.BeginActivityAsync(2 * Extent, 4096, CancellationToken.None);
        await store.BeginActivityAsync(6 * Extent, 4096, CancellationToken.None);
        store.Dispose();

        using var reopened = ReplicaStore.Open(PhysicalFileSystem.Instance, _dir.Path, Size, NullLogger.Instance);

        Assert.Equal(
            [new OutOfSyncRun(2 * Extent, 4096, MayMatch: false), new OutOfSyncRun((2 * Extent) + 4096, Extent - 4096, MayMatch: true), new OutOfSyncRun(6 * Extent, Extent, MayMatch: true)],
            Runs(reopened));
    }

    [Fact]
    public void Regions_only_the_peer_marked_may_match_until_this_replica_marks_them_or_they_are_cleared()
    {
        using var store = Create();
        store.MarkOutOfSync(0, 8192, store.GenerationForWritingAlone());
        var peer = new DirtyBitmap(Size);
        peer.Mark(4096, 3 * 4096, null);
        foreach (var chunk in DirtyBitmapCodec.EncodeAll(peer, 1 << 20))
        {
            store.MergePeerBitmap(chunk);
        }

        Assert.Equal([new OutOfSyncRun(0, 8192, MayMatch: false), new OutOfSyncRun(8192, 8192, MayMatch: true)], Runs(store));
        store.MarkOutOfSync(12288, 100, store.GenerationForWritingAlone());
        Assert.Equal([new OutOfSyncRun(0, 8192, MayMatch: false), new OutOfSyncRun(8192, 4096, MayMatch: true), new OutOfSyncRun(12288, 4096, MayMatch: false)], Runs(store));
        store.NoteSent(0, 4 * 4096);
        store.BeginFlushOfSent();
        store.CompleteFlushOfSent();
        store.MarkOutOfSync(8192, 4096);
        Assert.Equal([new OutOfSyncRun(8192, 4096, MayMatch: false)], Runs(store));
    }

    [Fact]
    public async Task Marks_made_at_open_after_a_crash_are_on_disk()
    {
        var store = Create();
        await store.BeginActivityAsync(3 * Extent, 4096, CancellationToken.None);
        store.Dispose();
        var reopened = ReplicaStore.Open(PhysicalFileSystem.Instance, _dir.Path, Size, NullLogger.Instance);
        reopened.CloseCleanly();
        reopened.Dispose();

        using var again = ReplicaStore.Open(PhysicalFileSystem.Instance, _dir.Path, Size, NullLogger.Instance);

        Assert.False(again.Crashed);
        Assert.Equal([(3 * Extent, Extent)], ReplicaData.MarkedRanges(again, Size));
    }

    [Fact]
    public async Task An_extent_past_the_end_of_the_volume_is_marked_only_up_to_the_end()
    {
        const long Smaller = (5 * Extent) + (Extent / 2);
        var store = ReplicaStore.Create(PhysicalFileSystem.Instance, _dir.Path, Guid.NewGuid(), Smaller, GenerationIds.NewVolume, ReplicaDiskState.UpToDate, ReplicaFlags.None, NullLogger.Instance);
        await store.BeginActivityAsync(Smaller - 4096, 4096, CancellationToken.None);
        store.Dispose();

        using var reopened = ReplicaStore.Open(PhysicalFileSystem.Instance, _dir.Path, Smaller, NullLogger.Instance);

        Assert.Equal([(5 * Extent, Extent / 2)], ReplicaData.MarkedRanges(reopened, Smaller));
        Assert.Equal(Extent / 2, reopened.OutOfSyncBytes);
    }

    [Fact]
    public async Task A_crash_while_connected_to_an_up_to_date_peer_is_recorded()
    {
        var store = Create();
        store.OnConnected(Guid.NewGuid(), inSync: true);
        await store.BeginActivityAsync(0, 4096, CancellationToken.None);
        store.Dispose();

        using var reopened = ReplicaStore.Open(PhysicalFileSystem.Instance, _dir.Path, Size, NullLogger.Instance);

        Assert.True(reopened.Status.Crashed);
        Assert.Equal(ReplicaFlags.CrashedWhileConnected, reopened.Status.Flags);
    }

    [Fact]
    public async Task A_clean_close_leaves_nothing_marked()
    {
        var store = Create();
        store.OnConnected(Guid.NewGuid(), inSync: true);
        var activity = await store.BeginActivityAsync(2 * Extent, 8192, CancellationToken.None);
        store.EndActivity(activity);
        store.CloseCleanly();
        store.Dispose();

        using var reopened = ReplicaStore.Open(PhysicalFileSystem.Instance, _dir.Path, Size, NullLogger.Instance);

        Assert.False(reopened.Crashed);
        Assert.Equal(0, reopened.OutOfSyncBytes);
        Assert.Equal(ReplicaFlags.None, reopened.Status.Flags);
    }

    [Fact]
    public void Marks_and_the_new_generation_of_changes_without_the_peer_survive_a_restart()
    {
        var store = Create();
        store.MarkOutOfSync(4096, 100, store.GenerationForWritingAlone());
        var generation = store.Generation;
        store.CloseCleanly();
        store.Dispose();

        using var reopened = ReplicaStore.Open(PhysicalFileSystem.Instance, _dir.Path, Size, NullLogger.Instance);

        Assert.Equal(GenerationIds.NewVolume.Current, generation.Bitmap);
        Assert.Equal(generation, reopened.Generation);
        Assert.Equal([(4096L, 4096L)], ReplicaData.MarkedRanges(reopened, Size));
    }

    [Fact]
    public void A_disk_state_changes_only_from_the_state_the_caller_saw()
    {
        using var store = Create();
        store.SetDiskState(ReplicaDiskState.Inconsistent);

        Assert.False(store.TryChangeDiskState(ReplicaDiskState.UpToDate, ReplicaDiskState.Outdated));
        Assert.Equal(ReplicaDiskState.Inconsistent, store.DiskState);
        Assert.True(store.TryChangeDiskState(ReplicaDiskState.Inconsistent, ReplicaDiskState.UpToDate));
        Assert.Equal(ReplicaDiskState.UpToDate, store.DiskState);
    }

    [Fact]
    public void A_damaged_bitmap_file_requires_a_full_sync()
    {
        var store = Create();
        store.MarkOutOfSync(0, 4096);
        store.CloseCleanly();
        store.Dispose();
        File.WriteAllBytes(Path.Combine(_dir.Path, ReplicaStore.BitmapFileName), new byte[100]);

        using var reopened = ReplicaStore.Open(PhysicalFileSystem.Instance, _dir.Path, Size, NullLogger.Instance);

        Assert.True(reopened.Status.NeedsFullSync);
        Assert.Equal(0, reopened.OutOfSyncBytes);
    }

    private static List<OutOfSyncRun> Runs(ReplicaStore store)
    {
        var runs = new List<OutOfSyncRun>();
        for (var run = store.NextOutOfSyncRun(0, int.MaxValue); run is { } r; run = store.NextOutOfSyncRun(r.Offset + r.Length, int.MaxValue))
        {
            runs.Add(r);
        }

        return runs;
    }

    private ReplicaStore Create() =>
        ReplicaStore.Create(PhysicalFileSystem.Instance, _dir.Path, Guid.NewGuid(), Size, GenerationIds.NewVolume, ReplicaDiskState.UpToDate, ReplicaFlags.None, NullLogger.Instance);
}

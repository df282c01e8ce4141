using Replicator.Core.Devices;
using Replicator.Core.Replication;
using Replicator.Core.Tests.Replication.Support;
using static Replicator.Core.Tests.Replication.Support.ReplicaData;

namespace Replicator.Core.Tests.Replication;

/// <summary>Invariant 4: a reconnect resends only what changed, in the right direction, without undoing newer writes.</summary>
public sealed class ResyncEngineTests
{
    private const int Unit = ReplicaSide.UnitSize;
    private static readonly TimeSpan Timeout = ReplicaPair.Timeout;

    [Fact]
    public async Task A_resync_sends_exactly_the_regions_changed_while_the_peer_was_away()
    {
        await using var pair = await ChangedWhileBWasAwayAsync();
        var marked = pair.A.Replica.OutOfSyncBytes;
        var coveredBefore = pair.A.Volume.Resync.CoveredBytes;

        await pair.ConnectAsync();
        await pair.WaitForResyncAsync(pair.A);

        Assert.Equal(4096 + (3 * Unit) + 4096, marked);
        Assert.Equal(marked, pair.A.Volume.Resync.CoveredBytes - coveredBefore);
        var report = await new VolumeVerifier(pair.A.Volume).RunAsync(CancellationToken.None).WaitAsync(Timeout);
        Assert.Equal(VerifyState.Completed, report.State);
        Assert.Equal(0, report.DifferingRegions);
        await AssertIdenticalAsync(pair);
    }

    [Fact]
    public async Task Holes_are_resent_as_trims_so_the_target_stays_thin()
    {
        await using var pair = await ChangedWhileBWasAwayAsync();
        Assert.Equal(5L * Unit, pair.B.Thin.AllocatedBytes);

        await pair.ConnectAsync();
        await pair.WaitForResyncAsync(pair.A);

        var trims = pair.B.Received.Of(PeerCall.Resync).Where(r => r.Op!.Value.Kind == WriteOpKind.Trim).Select(r => (r.Offset, r.Length));
        Assert.Equal([(2L * Unit, 3L * Unit)], trims);
        Assert.Equal(3L * Unit, pair.A.Thin.AllocatedBytes);
        Assert.Equal(pair.A.Thin.AllocatedBytes, pair.B.Thin.AllocatedBytes);
        Assert.Equal(await pair.A.Thin.GetAllocationAsync(0, pair.A.Thin.Size), await pair.B.Thin.GetAllocationAsync(0, pair.B.Thin.Size));
    }

    [Fact]
    public async Task Completion_makes_the_target_up_to_date_with_the_source_generation_and_clears_both_bitmaps()
    {
        await using var pair = await ChangedWhileBWasAwayAsync();
        var sourceGeneration = pair.A.Replica.Generation;
        var completing = pair.B.Hold(PeerCall.CompleteResync);

        await pair.ConnectAsync();
        await completing.Holding.WaitAsync(Timeout);
        Assert.Equal(SyncRole.Target, pair.B.Session!.Role);
        Assert.Equal(ReplicaDiskState.Inconsistent, pair.B.Replica.DiskState);
        Assert.NotEqual(sourceGeneration, pair.B.Replica.Generation);
        completing.Open();
        await pair.WaitForResyncAsync(pair.A);

        Assert.Equal(sourceGeneration.CompleteResyncAsSource(), pair.A.Replica.Generation);
        Assert.Equal(pair.A.Replica.Generation, pair.B.Replica.Generation);
        Assert.Equal(ReplicaDiskState.UpToDate, pair.B.Replica.DiskState);
        Assert.Equal(SyncRole.None, pair.B.Session!.Role);
        Assert.Equal(0, pair.A.Replica.OutOfSyncBytes);
        Assert.Equal(0, pair.B.Replica.OutOfSyncBytes);
        Assert.Equal(1, pair.B.Received.Count(PeerCall.CompleteResync));
    }

    [Theory]
    [InlineData("A")]
    [InlineData("B")]
    public async Task A_foreground_write_to_a_region_being_resynced_is_not_overwritten_by_older_resync_data(string through)
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        await pair.DisconnectAsync();
        var resynced = Pattern(Unit, seed: 20);
        await pair.A.Volume.WriteAsync(0, resynced, IoFlags.None);
        var gate = pair.B.Hold(PeerCall.Resync);

        await pair.ConnectAsync();
        await gate.Holding.WaitAsync(Timeout);
        var fresh = Pattern(8192, seed: 21);
        var write = pair.Side(through).Volume.WriteAsync(4096, fresh, IoFlags.None).AsTask();
        await Eventually.StaysPendingAsync(write, "a write to a region whose resync data is in flight");
        gate.Open();
        await write.WaitAsync(Timeout);
        await pair.WaitForResyncAsync(pair.A);

        var expected = resynced.ToArray();
        fresh.CopyTo(expected, 4096);
        Assert.Equal(expected, await pair.A.ReadLocalAsync(0, Unit));
        Assert.Equal(expected, await pair.B.ReadLocalAsync(0, Unit));
    }

    [Fact]
    public async Task A_resync_target_reads_the_regions_it_lacks_from_the_peer_and_the_rest_locally()
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        var old = Pattern(Unit, seed: 22);
        await pair.A.Volume.WriteAsync(0, old, IoFlags.None);
        await pair.DisconnectAsync();
        var fresh = Pattern(4096, seed: 23);
        await pair.A.Volume.WriteAsync(0, fresh, IoFlags.None);
        pair.A.Volume.Resync.Pause();

        await pair.ConnectAsync();
        Assert.Equal(SyncRole.Target, pair.B.Session!.Role);

        Assert.Equal(fresh, await ReadAsync(pair.B.Volume, 0, 4096));
        Assert.Equal(1, pair.A.Received.Count(PeerCall.Read));
        Assert.Equal(old.AsSpan(0, 4096).ToArray(), await pair.B.ReadLocalAsync(0, 4096));

        Assert.Equal(old.AsSpan(8192, 4096).ToArray(), await ReadAsync(pair.B.Volume, 8192, 4096));
        Assert.Equal(1, pair.A.Received.Count(PeerCall.Read));

        pair.A.Volume.Resync.Resume();
        await pair.WaitForResyncAsync(pair.A);
        Assert.Equal(fresh, await ReadAsync(pair.B.Volume, 0, 4096));
        Assert.Equal(1, pair.A.Received.Count(PeerCall.Read));
    }

    [Fact]
    public async Task A_paused_resync_sends_nothing_more_until_it_is_resumed()
    {
        const int regions = ResyncEngine.RunsInFlight + 3;
        await using var pair = await ApartRegionsChangedWhileBWasAwayAsync(regions);
        var resync = pair.A.Volume.Resync;
        var gate = pair.B.Hold(PeerCall.Resync);

        await pair.ConnectAsync();
        await gate.WhenArrived(ResyncEngine.RunsInFlight).WaitAsync(Timeout);
        resync.Pause();
        gate.Open();
        const long inFlight = ResyncEngine.RunsInFlight * 4096L;
        await Eventually.TrueAsync(() => resync.SentBytes == inFlight, "the runs in flight when paused are sent");

        Assert.Equal(ResyncState.Paused, resync.Progress.State);
        await Eventually.HoldsAsync(() => pair.B.Received.Count(PeerCall.Resync) == ResyncEngine.RunsInFlight && resync.SentBytes == inFlight,
            "a paused resync sends nothing");
        Assert.Equal(3 * 4096, resync.Progress.RemainingBytes);

        resync.Resume();
        await pair.WaitForResyncAsync(pair.A);
        Assert.Equal(regions * 4096, resync.SentBytes);
        await AssertIdenticalAsync(pair);
    }

    [Fact]
    public async Task A_resync_clears_what_it_sent_only_once_a_flush_made_it_durable_on_the_target()
    {
        await using var pair = await ApartRegionsChangedWhileBWasAwayAsync(regions: 8);
        var gate = pair.B.Hold(PeerCall.Flush);

        await pair.ConnectAsync();
        await gate.Holding.WaitAsync(Timeout);

        // Everything reached B, but only its page cache: a power loss there would lose it.
        Assert.Equal(8 * 4096, pair.A.Volume.Resync.SentBytes);
        Assert.Equal(8 * 4096, pair.A.Replica.OutOfSyncBytes);
        Assert.Equal(0, pair.B.Received.Count(PeerCall.CompleteResync));

        gate.Open();
        await pair.WaitForResyncAsync(pair.A);
        Assert.Equal(0, pair.A.Replica.OutOfSyncBytes);
        await AssertIdenticalAsync(pair);
    }

    [Fact]
    public async Task A_resync_cut_short_by_a_disconnect_resumes_from_the_regions_not_yet_durable_on_the_target()
    {
        await using var pair = await ApartRegionsChangedWhileBWasAwayAsync(regions: 8);
        var resync = pair.A.Volume.Resync;
        var gate = pair.B.Hold(PeerCall.Resync, passFirst: 3);

        await pair.ConnectAsync();
        await gate.Holding.WaitAsync(Timeout);

        // Runs go out in parallel: the fourth can be held before the first three are answered.
        await Eventually.TrueAsync(() => resync.SentBytes == 3 * 4096, "the three runs let through have landed");
        await pair.DisconnectAsync();
        var remaining = pair.A.Replica.OutOfSyncBytes;
        var sentBefore = resync.SentBytes;
        Assert.Equal(3 * 4096, sentBefore);

        // The three runs B confirmed were never flushed there: they stay marked and go again.
        Assert.Equal(8 * 4096, remaining);

        pair.B.Incoming = null;
        await pair.ConnectAsync();
        await pair.WaitForResyncAsync(pair.A);

        Assert.Equal(remaining, resync.SentBytes - sentBefore);
        await AssertIdenticalAsync(pair);
    }

    [Fact]
    public async Task After_a_crash_only_the_regions_that_may_match_are_compared_and_what_changed_alone_is_sent_without_comparing()
    {
        // A wrote two units alone; B's bitmap marks two others, as B's activity log would after a kill -9,
        // whose data both sides hold alike. One unit is in both: A changed it alone, so it differs for certain.
        await using var pair = await ReplicaPair.ConnectedAsync();
        await pair.A.Volume.WriteAsync(0, Pattern(3 * Unit, seed: 50), IoFlags.None);
        await pair.DisconnectAsync();
        await pair.A.Volume.WriteAsync(0, Pattern(2 * Unit, seed: 51), IoFlags.None);
        pair.B.Replica.MarkOutOfSync(Unit, 2 * Unit);
        CrashedWhileConnected(pair);
        var resync = pair.A.Volume.Resync;

        await pair.ConnectAsync();
        await pair.WaitForResyncAsync(pair.A);

        Assert.Equal(Unit, resync.ComparedBytes);
        Assert.Equal(2 * Unit, resync.SentBytes);
        Assert.Equal(3 * Unit, resync.CoveredBytes);
        Assert.Equal([(0L, 2L * Unit)], pair.B.Received.Of(PeerCall.Resync).Select(r => (r.Offset, r.Length)));
        await AssertIdenticalAsync(pair);
    }

    [Fact]
    public async Task After_a_crash_a_region_that_may_match_but_differs_is_found_by_its_checksum_and_sent()
    {
        // B's copy of one 4 KiB block of the region drifted (a write B applied but A never did).
        await using var pair = await ReplicaPair.ConnectedAsync();
        await pair.A.Volume.WriteAsync(Unit, Pattern(Unit, seed: 53), IoFlags.None);
        await pair.DisconnectAsync();
        await pair.B.Thin.WriteAsync(Unit, Pattern(4096, seed: 52), IoFlags.None);
        pair.B.Replica.MarkOutOfSync(Unit, Unit);
        CrashedWhileConnected(pair);
        var resync = pair.A.Volume.Resync;

        await pair.ConnectAsync();
        await pair.WaitForResyncAsync(pair.A);

        Assert.Equal(Unit, resync.ComparedBytes);
        Assert.Equal(pair.A.Replica.Granularity, resync.SentBytes);
        await AssertIdenticalAsync(pair);
    }

    [Fact]
    public async Task A_change_the_peer_refused_while_connected_is_resynced_without_a_reconnect()
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        pair.B.Refuse(PeerCall.Replicate);
        var data = Pattern(4096, seed: 24);

        await pair.A.Volume.WriteAsync(Unit, data, IoFlags.None).AsTask().WaitAsync(Timeout);
        await pair.WaitForResyncAsync(pair.A);

        Assert.Equal(data, await pair.B.ReadLocalAsync(Unit, 4096));
        Assert.Equal(pair.A.Replica.Generation, pair.B.Replica.Generation);
        Assert.Equal(0, pair.A.Replica.OutOfSyncBytes);
    }

    [Fact]
    public async Task A_change_the_peer_refused_while_the_resync_completes_is_resent()
    {
        await using var pair = await ChangedWhileBWasAwayAsync();
        var completing = new Gate();
        pair.B.Incoming = (request, t) => request.Call switch
        {
            PeerCall.CompleteResync => completing.PassAsync(t),
            PeerCall.Replicate => throw new BlockDeviceException(StorageError.Io, "B: injected disk failure"),
            _ => ValueTask.CompletedTask,
        };
        await pair.ConnectAsync();
        await completing.Holding.WaitAsync(Timeout);
        var data = Pattern(4096, seed: 25);

        var write = pair.A.Volume.WriteAsync(Unit, data, IoFlags.None).AsTask();
        await Task.WhenAny(write, Task.Delay(200));
        completing.Open();
        await write.WaitAsync(Timeout);
        await pair.WaitForResyncAsync(pair.A, count: 2);

        Assert.Equal(0, pair.A.Replica.OutOfSyncBytes);
        await AssertIdenticalAsync(pair);
    }

    /// <summary>
    /// A and B hold the same data in units 0 to 4; then, with B away, A writes 4 KiB in unit 0,
    /// trims units 2 to 4 (write-zeroes for unit 3) and writes 4 KiB into unit 5, which B never had.
    /// </summary>
    private static async Task<ReplicaPair> ChangedWhileBWasAwayAsync()
    {
        var pair = await ReplicaPair.ConnectedAsync();
        await pair.A.Volume.WriteAsync(0, Pattern(5 * Unit, seed: 30), IoFlags.None);
        await pair.DisconnectAsync();
        await pair.A.Volume.WriteAsync(8192, Pattern(4096, seed: 31), IoFlags.None);
        await pair.A.Volume.TrimAsync(2 * Unit, Unit, IoFlags.None);
        await pair.A.Volume.WriteZeroesAsync(3 * Unit, Unit, IoFlags.None);
        await pair.A.Volume.WriteAsync(5 * Unit, Pattern(4096, seed: 32), IoFlags.None);
        await pair.A.Volume.TrimAsync(4 * Unit, Unit, IoFlags.None);
        return pair;
    }

    /// <summary>With B away, A writes 4 KiB at the start of each of the first <paramref name="regions"/> units: as many separate resync runs.</summary>
    private static async Task<ReplicaPair> ApartRegionsChangedWhileBWasAwayAsync(int regions)
    {
        var pair = await ReplicaPair.ConnectedAsync();
        await pair.DisconnectAsync();
        for (var i = 0; i < regions; i++)
        {
            await pair.A.Volume.WriteAsync(i * (long)Unit, Pattern(4096, seed: 40 + i), IoFlags.None);
        }

        return pair;
    }

    /// <summary>B records a crash while connected, as its restart would: A, which stayed up, is the source, and compares first.</summary>
    private static void CrashedWhileConnected(ReplicaPair pair) => pair.B.Replica.AddFlags(ReplicaFlags.CrashedWhileConnected);
}

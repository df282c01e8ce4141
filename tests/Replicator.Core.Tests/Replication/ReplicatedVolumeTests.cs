using Replicator.Core.Devices;
using Replicator.Core.Replication;
using Replicator.Core.Tests.Replication.Support;
using static Replicator.Core.Tests.Replication.Support.ReplicaData;

namespace Replicator.Core.Tests.Replication;

/// <summary>The write path of a replicated volume: protocol C, forwarding to the owner, and what happens when the peer goes away.</summary>
public sealed class ReplicatedVolumeTests
{
    private static readonly TimeSpan Timeout = ReplicaPair.Timeout;

    [Theory]
    [InlineData("A")]
    [InlineData("B")]
    public async Task A_write_through_either_node_is_readable_on_both_when_it_returns(string through)
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        var data = Pattern(10_000, seed: 1);

        await pair.Side(through).Volume.WriteAsync(70_000, data, IoFlags.None).AsTask().WaitAsync(Timeout);

        Assert.Equal(data, await pair.A.ReadLocalAsync(70_000, data.Length));
        Assert.Equal(data, await pair.B.ReadLocalAsync(70_000, data.Length));
        Assert.Equal(data, await ReadAsync(pair.Other(pair.Side(through)).Volume, 70_000, data.Length));
    }

    [Theory]
    [InlineData("A", Change.Write)]
    [InlineData("A", Change.Trim)]
    [InlineData("A", Change.WriteZeroes)]
    [InlineData("A", Change.WriteZeroesNoHole)]
    [InlineData("B", Change.Write)]
    [InlineData("B", Change.Trim)]
    public async Task A_change_is_not_acknowledged_before_the_peer_applied_it(string through, Change kind)
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        var old = Pattern(ReplicaSide.UnitSize, seed: 2);
        await pair.A.Volume.WriteAsync(0, old, IoFlags.None);
        var fresh = Pattern(4096, seed: 3);
        var expected = kind == Change.Write ? fresh : new byte[4096];
        var gate = pair.B.Hold(PeerCall.Replicate);

        var change = pair.Side(through).Volume.ChangeAsync(kind, 8192, 4096, fresh).AsTask();
        await gate.Holding.WaitAsync(Timeout);
        await Eventually.StaysPendingAsync(change, "the change, while its peer half is held");
        Assert.Equal(old.AsSpan(8192, 4096).ToArray(), await pair.B.ReadLocalAsync(8192, 4096));

        gate.Open();
        await change.WaitAsync(Timeout);
        Assert.Equal(expected, await pair.B.ReadLocalAsync(8192, 4096));
        Assert.Equal(expected, await pair.A.ReadLocalAsync(8192, 4096));
    }

    [Fact]
    public async Task A_write_through_the_node_that_does_not_order_is_ordered_on_the_owner_and_replicated_back()
    {
        await using var pair = await ReplicaPair.ConnectedAsync(preferred: "A");
        var data = Pattern(5000, seed: 4);

        await pair.B.Volume.WriteAsync(12_345, data, IoFlags.None).AsTask().WaitAsync(Timeout);

        Assert.Equal(1, pair.A.Received.Count(PeerCall.Forward));
        Assert.Equal(1, pair.B.Received.Count(PeerCall.Replicate));
        Assert.Equal(0, pair.A.Received.Count(PeerCall.Replicate));
        Assert.Equal(data, await pair.A.ReadLocalAsync(12_345, data.Length));
        Assert.Equal(data, await pair.B.ReadLocalAsync(12_345, data.Length));
    }

    [Fact]
    public async Task A_forwarded_write_arriving_while_the_owner_is_pairing_waits_for_the_pairing()
    {
        await using var pair = await ReplicaPair.ConnectedAsync(preferred: "A");
        await pair.DisconnectAsync();
        var pending = await pair.BeginPairingAsync();
        pending.Attach(pair.B);
        var data = Pattern(4096, seed: 5);

        var write = pair.B.Volume.WriteAsync(4096, data, IoFlags.None).AsTask();
        await Eventually.TrueAsync(() => pair.A.Received.Count(PeerCall.Forward) == 1, "the write is forwarded to A");
        await Eventually.StaysPendingAsync(write, "a write forwarded to an owner that is still pairing");

        pending.Attach(pair.A);
        await write.WaitAsync(Timeout);
        Assert.Equal(data, await pair.A.ReadLocalAsync(4096, 4096));
        Assert.Equal(data, await pair.B.ReadLocalAsync(4096, 4096));
    }

    [Theory]
    [InlineData("A")]
    [InlineData("B")]
    public async Task A_write_that_waited_for_a_pairing_reaches_the_peer_once_paired(string through)
    {
        await using var pair = await ReplicaPair.ConnectedAsync(preferred: "A");
        await pair.DisconnectAsync();
        var generation = pair.A.Replica.Generation;
        var pending = await pair.BeginPairingAsync();
        var data = Pattern(4096, seed: 6);

        var write = pair.Side(through).Volume.WriteAsync(20_480, data, IoFlags.None).AsTask();
        await Eventually.StaysPendingAsync(write, "a write while both sides are pairing");
        pending.Attach(pending.NonOwner);
        pending.Attach(pending.Owner);
        await write.WaitAsync(Timeout);

        Assert.Equal(data, await pair.A.ReadLocalAsync(20_480, 4096));
        Assert.Equal(data, await pair.B.ReadLocalAsync(20_480, 4096));
        Assert.Equal(0, pair.A.Replica.OutOfSyncBytes);
        Assert.Equal(0, pair.B.Replica.OutOfSyncBytes);
        Assert.Equal(generation, pair.A.Replica.Generation);
        Assert.Equal(generation, pair.B.Replica.Generation);
    }

    [Fact]
    public async Task A_write_in_flight_when_the_peer_dies_is_acknowledged_marked_and_starts_a_new_generation()
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        var before = pair.A.Replica.Generation;
        var gate = pair.B.Hold(PeerCall.Replicate);
        var data = Pattern(1000, seed: 7);

        var write = pair.A.Volume.WriteAsync(8192 + 100, data, IoFlags.None).AsTask();
        await gate.Holding.WaitAsync(Timeout);
        pair.Link!.Cut();
        await write.WaitAsync(Timeout);

        Assert.Equal([(8192L, 4096L)], MarkedRanges(pair.A));
        var after = pair.A.Replica.Generation;
        Assert.Equal(before.Current, after.Bitmap);
        Assert.NotEqual(before.Current, after.Current);
        Assert.Equal(data, await pair.A.ReadLocalAsync(8192 + 100, data.Length));
        Assert.Equal(new byte[data.Length], await pair.B.ReadLocalAsync(8192 + 100, data.Length));
    }

    [Fact]
    public async Task A_write_the_peer_missed_fails_when_the_quorum_refuses_and_is_marked_without_a_new_generation()
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        var before = pair.A.Replica.Generation;
        pair.A.Quorum.Refuses = true;
        var gate = pair.B.Hold(PeerCall.Replicate);

        var write = pair.A.Volume.WriteAsync(3 * 4096, Pattern(8192, seed: 8), IoFlags.None).AsTask();
        await gate.Holding.WaitAsync(Timeout);
        pair.Link!.Cut();

        var error = await Assert.ThrowsAsync<BlockDeviceException>(() => write.WaitAsync(Timeout));
        Assert.Equal(StorageError.NotPermitted, error.Error);
        Assert.Equal([(3 * 4096L, 8192L)], MarkedRanges(pair.A));
        Assert.Equal(before, pair.A.Replica.Generation);
    }

    [Fact]
    public async Task A_write_alone_is_refused_when_the_quorum_refuses_and_changes_nothing()
    {
        await using var pair = ReplicaPair.Create();
        pair.A.Quorum.Refuses = true;

        var error = await Assert.ThrowsAsync<BlockDeviceException>(() => pair.A.Volume.WriteAsync(0, Pattern(4096, seed: 9), IoFlags.None).AsTask().WaitAsync(Timeout));

        Assert.Equal(StorageError.NotPermitted, error.Error);
        Assert.Equal(new byte[4096], await pair.A.ReadLocalAsync(0, 4096));
        Assert.Equal(0, pair.A.Replica.OutOfSyncBytes);
        Assert.Equal(GenerationIds.NewVolume, pair.A.Replica.Generation);
    }

    [Fact]
    public async Task An_unpaired_replica_serves_reads_only_while_the_quorum_lets_it_serve_alone()
    {
        await using var pair = ReplicaPair.Create();
        var data = Pattern(4096, seed: 12);
        await pair.A.Volume.WriteAsync(8192, data, IoFlags.None).AsTask().WaitAsync(Timeout);
        Assert.Equal(data, await ReadAsync(pair.A.Volume, 8192, 4096).WaitAsync(Timeout));

        pair.A.Quorum.Refuses = true;
        var error = await Assert.ThrowsAsync<BlockDeviceException>(() => ReadAsync(pair.A.Volume, 8192, 4096).WaitAsync(Timeout));

        Assert.Equal(StorageError.NotPermitted, error.Error);
    }

    [Theory]
    [InlineData("Inconsistent")]
    [InlineData("Outdated")]
    public async Task A_replica_that_is_not_up_to_date_serves_no_read_while_unpaired(string diskState)
    {
        await using var pair = ReplicaPair.Create();
        var state = Enum.Parse<ReplicaDiskState>(diskState);
        pair.B.Replica.SetDiskState(state);

        var error = await Assert.ThrowsAsync<BlockDeviceException>(() => ReadAsync(pair.B.Volume, 0, 4096).WaitAsync(Timeout));

        Assert.Equal(StorageError.Io, error.Error);
        Assert.Contains(state.ToString().ToLowerInvariant(), error.Message, StringComparison.Ordinal);
        Assert.Equal(new byte[4096], await ReadAsync(pair.A.Volume, 0, 4096).WaitAsync(Timeout));
    }

    [Theory]
    [InlineData(Change.Write, 5000, 1000, 4096, 4096)]
    [InlineData(Change.Trim, 10_000, 20_000, 8192, 24_576)]
    [InlineData(Change.WriteZeroesNoHole, 70_000, 100, 69_632, 4096)]
    [InlineData(Change.WriteZeroes, 131_072, 65_536, 131_072, 65_536)]
    public async Task A_change_without_the_peer_is_marked_before_it_is_applied(Change kind, long offset, int length, long markedOffset, long markedLength)
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        await pair.A.Volume.WriteAsync(0, Pattern(4 * ReplicaSide.UnitSize, seed: 10), IoFlags.None);
        await pair.DisconnectAsync();
        var markedWhenApplied = new List<List<(long, long)>>();
        pair.A.DataChanging = () => markedWhenApplied.Add(MarkedRanges(pair.A));

        await pair.A.Volume.ChangeAsync(kind, offset, length).AsTask().WaitAsync(Timeout);

        Assert.NotEmpty(markedWhenApplied);
        Assert.All(markedWhenApplied, marked => Assert.Equal([(markedOffset, markedLength)], marked));
    }

    [Fact]
    public async Task Changes_without_the_peer_mark_exactly_the_regions_they_touch()
    {
        await using var pair = ReplicaPair.Create();
        var volume = pair.A.Volume;

        await volume.WriteAsync(4095, new byte[] { 1 }, IoFlags.None);
        await volume.WriteAsync(3 * 4096 - 1, new byte[] { 1, 2 }, IoFlags.None);
        await volume.WriteAsync(8 * 4096, Pattern(4096, seed: 12), IoFlags.None);
        await volume.TrimAsync(20 * 4096 + 1, 4096, IoFlags.None);
        await volume.WriteZeroesAsync(40 * 4096, 3 * 4096, IoFlags.None);
        await volume.WriteZeroesAsync(pair.A.Thin.Size - 10, 10, IoFlags.NoHole);

        Assert.Equal(
            [
                (0L, 4096L),
                (2 * 4096L, 2 * 4096L),
                (8 * 4096L, 4096L),
                (20 * 4096L, 2 * 4096L),
                (40 * 4096L, 3 * 4096L),
                (pair.A.Thin.Size - 4096, 4096L),
            ],
            MarkedRanges(pair.A));
    }

    [Fact]
    public async Task A_write_whose_client_gives_up_while_the_peer_goes_away_is_marked_so_the_replicas_converge()
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        var gate = pair.B.Hold(PeerCall.Replicate);
        using var cancel = new CancellationTokenSource();
        var data = Pattern(4096, seed: 13);

        var write = pair.A.Volume.WriteAsync(16_384, data, IoFlags.None, cancel.Token).AsTask();
        await gate.Holding.WaitAsync(Timeout);
        await cancel.CancelAsync();
        await pair.DisconnectAsync();
        await Task.WhenAny(write).WaitAsync(Timeout);

        Assert.Equal([(16_384L, 4096L)], MarkedRanges(pair.A));
        pair.B.Incoming = null;
        await pair.ConnectAsync();
        await pair.WaitForResyncAsync(pair.A);
        await AssertIdenticalAsync(pair);
    }

    [Fact]
    public async Task A_write_whose_client_gives_up_keeps_its_place_in_the_order_until_the_peer_answers()
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var replicates = 0;
        pair.B.Incoming = async (request, t) =>
        {
            if (request.Call == PeerCall.Replicate && Interlocked.Increment(ref replicates) == 1)
            {
                first.TrySetResult();
                await release.Task.WaitAsync(t);
            }
        };
        using var cancel = new CancellationTokenSource();
        var older = Pattern(4096, seed: 14);
        var newer = Pattern(4096, seed: 15);

        var givenUp = pair.A.Volume.WriteAsync(16_384, older, IoFlags.None, cancel.Token).AsTask();
        await first.Task.WaitAsync(Timeout);
        await cancel.CancelAsync();
        await Task.WhenAny(givenUp, Task.Delay(100));
        var next = pair.A.Volume.WriteAsync(16_384, newer, IoFlags.None).AsTask();
        await Task.WhenAny(next, Task.Delay(100));
        release.TrySetResult();
        await Task.WhenAny(givenUp).WaitAsync(Timeout);
        await next.WaitAsync(Timeout);

        Assert.Equal(newer, await pair.A.ReadLocalAsync(16_384, 4096));
        Assert.Equal(newer, await pair.B.ReadLocalAsync(16_384, 4096));
    }

    [Fact]
    public async Task Many_changes_the_peer_missed_at_the_same_moment_are_all_acknowledged()
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        var gate = pair.B.Hold(PeerCall.Replicate);
        const int Writes = 64;

        var writes = Enumerable.Range(0, Writes)
            .Select(i => pair.A.Volume.WriteAsync(i * 8192L, Pattern(4096, seed: 100 + i), IoFlags.None).AsTask())
            .ToArray();
        await gate.WhenArrived(Writes).WaitAsync(Timeout);
        pair.Link!.Cut();

        await Task.WhenAll(writes).WaitAsync(Timeout);
        Assert.Equal(Writes * 4096L, pair.A.Replica.OutOfSyncBytes);
    }

    [Fact]
    public async Task Kicks_of_the_resync_from_two_threads_at_once_never_fail()
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        var resync = pair.A.Volume.Resync;
        using var together = new Barrier(2);

        var kickers = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
        {
            try
            {
                for (var round = 0; round < 200; round++)
                {
                    Assert.True(together.SignalAndWait(Timeout), "the other thread stopped kicking");
                    for (var i = 0; i < 1000; i++)
                    {
                        resync.Kick();
                    }
                }
            }
            finally
            {
                together.RemoveParticipant();
            }
        }));

        await Task.WhenAll(kickers).WaitAsync(Timeout);
    }
}

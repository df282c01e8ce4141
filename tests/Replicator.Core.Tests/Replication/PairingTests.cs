using Replicator.Core.Devices;
using Replicator.Core.Replication;
using Replicator.Core.Tests.Replication.Support;
using static Replicator.Core.Tests.Replication.Support.ReplicaData;

namespace Replicator.Core.Tests.Replication;

/// <summary>What a reconnect does, decided from the generation identifiers the write path leaves behind.</summary>
public sealed class PairingTests
{
    private const int Unit = ReplicaSide.UnitSize;

    [Fact]
    public async Task Replicas_created_together_pair_without_a_resync()
    {
        await using var pair = await ReplicaPair.ConnectedAsync();

        Assert.Equal(SyncRole.None, pair.A.Session!.Role);
        Assert.Equal(SyncRole.None, pair.B.Session!.Role);
        Assert.True(pair.A.Session.LocalIsOwner);
        Assert.False(pair.B.Session.LocalIsOwner);
        Assert.Equal(0, pair.B.Received.Count(PeerCall.Resync));
        Assert.Equal(ReplicaFlags.ConnectedAndUpToDate, pair.A.Replica.Status.Flags);
    }

    [Fact]
    public async Task The_side_that_wrote_alone_orders_writes_and_resyncs_the_other_even_when_it_is_not_preferred()
    {
        await using var pair = await ReplicaPair.ConnectedAsync(preferred: "A");
        await pair.DisconnectAsync();
        var data = Pattern(4096, seed: 60);
        await pair.B.Volume.WriteAsync(Unit, data, IoFlags.None);

        await pair.ConnectAsync();

        Assert.True(pair.B.Session!.LocalIsOwner);
        Assert.Equal(SyncRole.Source, pair.B.Session.Role);
        Assert.False(pair.A.Session!.LocalIsOwner);
        await pair.WaitForResyncAsync(pair.B);
        Assert.Equal(data, await pair.A.ReadLocalAsync(Unit, 4096));
        Assert.Equal(4096, pair.B.Volume.Resync.SentBytes);
    }

    [Fact]
    public async Task Both_sides_writing_alone_is_a_split_brain_and_is_not_resynced()
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        await pair.DisconnectAsync();
        await pair.A.Volume.WriteAsync(0, Pattern(4096, seed: 61), IoFlags.None);
        await pair.B.Volume.WriteAsync(Unit, Pattern(4096, seed: 62), IoFlags.None);

        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => pair.ConnectAsync());

        Assert.Contains("SplitBrain", refused.Message);
        Assert.Equal(pair.A.Replica.Generation.Bitmap, pair.B.Replica.Generation.Bitmap);
        Assert.NotEqual(pair.A.Replica.Generation.Current, pair.B.Replica.Generation.Current);
        Assert.Equal(0, pair.B.Received.Count(PeerCall.Resync));
    }

    [Fact]
    public async Task An_empty_replica_receives_every_allocated_range_and_gives_back_what_the_source_does_not_hold()
    {
        await using var pair = ReplicaPair.Create(emptyB: true);
        await pair.A.Volume.WriteAsync(0, Pattern(Unit, seed: 63), IoFlags.None);
        await pair.A.Volume.WriteAsync(3 * Unit + 100, Pattern(1000, seed: 64), IoFlags.None);
        await pair.B.Thin.WriteAsync(5 * Unit, Pattern(Unit, seed: 65), IoFlags.None);

        await pair.ConnectAsync();
        await pair.WaitForResyncAsync(pair.A);

        // Three units are covered; A's two allocated units travel as data, B's third is trimmed.
        Assert.Equal(3L * Unit, pair.A.Volume.Resync.CoveredBytes);
        Assert.Equal(2L * Unit, pair.A.Volume.Resync.SentBytes);
        Assert.Equal(2L * Unit, pair.B.Thin.AllocatedBytes);
        await AssertIdenticalAsync(pair);
        Assert.Equal(pair.A.Replica.Generation, pair.B.Replica.Generation);
        Assert.Equal(ReplicaDiskState.UpToDate, pair.B.Replica.DiskState);
    }

    [Fact]
    public async Task After_the_owner_lost_power_while_connected_the_replica_that_stayed_up_resyncs_it_and_no_acknowledged_write_is_lost()
    {
        await using var pair = await ReplicaPair.ConnectedAsync(preferred: "A");
        var durable = Pattern(4096, seed: 66);
        var acknowledged = Pattern(4096, seed: 67);
        await pair.A.Volume.WriteAsync(0, durable, IoFlags.None);
        await pair.A.Volume.FlushAsync();
        await pair.A.Volume.WriteAsync(0, acknowledged, IoFlags.None);

        // A loses power: the connection ends, A's page cache is gone (the block holds what was flushed),
        // and A restarts finding it was connected: its activity log marks the extent, and it records the crash.
        await pair.DisconnectAsync();
        await pair.A.Thin.WriteAsync(0, durable, IoFlags.None);
        pair.A.Replica.MarkOutOfSync(0, Unit);
        pair.A.Replica.AddFlags(ReplicaFlags.CrashedWhileConnected);

        await pair.ConnectAsync();
        await Eventually.TrueAsync(() => pair.A.Volume.Resync.Progress.Completed + pair.B.Volume.Resync.Progress.Completed == 1
            && pair.A.Replica.IsUpToDate && pair.B.Replica.IsUpToDate && pair.A.Replica.OutOfSyncBytes == 0 && pair.B.Replica.OutOfSyncBytes == 0,
            "one resync completes, either way");

        Assert.Equal(acknowledged, await pair.B.ReadLocalAsync(0, 4096));
        Assert.Equal(acknowledged, await pair.A.ReadLocalAsync(0, 4096));
        Assert.Equal(1, pair.B.Volume.Resync.Progress.Completed);
    }
}

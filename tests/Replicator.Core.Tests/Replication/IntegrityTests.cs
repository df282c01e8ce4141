using Replicator.Core.Devices;
using Replicator.Core.Hashing;
using Replicator.Core.Replication;
using Replicator.Core.Tests.Replication.Support;
using static Replicator.Core.Tests.Replication.Support.ReplicaData;

namespace Replicator.Core.Tests.Replication;

/// <summary>A block that fails its checksum on one replica is repaired from the other before a read returns; with no good copy the read fails.</summary>
public sealed class IntegrityTests
{
    private const int Unit = ReplicaSide.UnitSize;
    private const int Block = BlockChecksum.BlockSize;
    private static readonly TimeSpan Timeout = ReplicaPair.Timeout;

    [Theory]
    [InlineData("A")]
    [InlineData("B")]
    public async Task A_block_damaged_on_one_replica_reads_back_right_and_is_healed_there(string damaged)
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        var data = Pattern(2 * Unit, seed: 1);
        await pair.A.Volume.WriteAsync(Unit, data, IoFlags.None);
        var side = pair.Side(damaged);
        side.Corrupt(Unit + (3 * Block) + 17);

        var back = new byte[2 * Unit];
        await side.Volume.ReadAsync(Unit, back).AsTask().WaitAsync(Timeout);

        Assert.Equal(data, back);
        Assert.Equal(data, await side.ReadLocalAsync(Unit, 2 * Unit));
        var counts = side.Volume.Integrity.Snapshot;
        Assert.Equal((1, 1, 0), (counts.Detected, counts.Healed, counts.Unrecoverable));
        Assert.Equal(new IntegrityEvent(counts.Last!.At, Unit + (3 * Block), damaged, IntegrityPath.Read, "healed"), counts.Last);
        Assert.Equal(0, pair.Other(side).Volume.Integrity.Snapshot.Detected);
        Assert.Equal(0, (await new VolumeVerifier(pair.A.Volume).RunAsync(CancellationToken.None).WaitAsync(Timeout)).DifferingRegions);
    }

    [Fact]
    public async Task A_block_damaged_on_both_replicas_fails_the_read_and_only_its_reads()
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        var data = Pattern(Unit, seed: 2);
        await pair.A.Volume.WriteAsync(0, data, IoFlags.None);
        pair.A.Corrupt((5 * Block) + 1);
        pair.B.Corrupt((5 * Block) + 2);

        foreach (var side in new[] { pair.A, pair.B })
        {
            var e = await Assert.ThrowsAsync<CorruptBlockException>(async () => await side.Volume.ReadAsync(0, new byte[Unit]).AsTask().WaitAsync(Timeout));
            Assert.Equal(5 * Block, e.Offset);
            Assert.Equal(StorageError.Io, e.Error);
            var before = new byte[5 * Block];
            await side.Volume.ReadAsync(0, before);
            Assert.Equal(data.AsSpan(0, 5 * Block).ToArray(), before);
            var after = new byte[Unit - (6 * Block)];
            await side.Volume.ReadAsync(6 * Block, after);
            Assert.Equal(data.AsSpan(6 * Block).ToArray(), after);
        }

        // Read again: still an error, counted once.
        await Assert.ThrowsAsync<CorruptBlockException>(async () => await pair.A.Volume.ReadAsync(5 * Block, new byte[Block]));
        Assert.Equal((1, 0, 1), (pair.A.Volume.Integrity.Snapshot.Detected, pair.A.Volume.Integrity.Snapshot.Healed, pair.A.Volume.Integrity.Snapshot.Unrecoverable));

        var report = await new VolumeVerifier(pair.A.Volume, Block).RunAsync(CancellationToken.None).WaitAsync(Timeout);
        Assert.Equal([new DifferingRange(5 * Block, Block, DamagedReplica.Both)], report.Differing);

        // A write of the whole block replaces it on both: no error any more.
        await pair.B.Volume.WriteAsync(5 * Block, data.AsMemory(5 * Block, Block), IoFlags.None);
        var healed = new byte[Unit];
        await pair.A.Volume.ReadAsync(0, healed);
        Assert.Equal(data, healed);
    }

    [Fact]
    public async Task Without_its_peer_a_replica_fails_the_read_of_a_damaged_block_and_heals_it_once_paired_again()
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        var data = Pattern(Unit, seed: 3);
        await pair.A.Volume.WriteAsync(0, data, IoFlags.None);
        await pair.DisconnectAsync();
        pair.A.Corrupt(Block + 9);

        var e = await Assert.ThrowsAsync<CorruptBlockException>(async () => await pair.A.Volume.ReadAsync(0, new byte[Unit]).AsTask().WaitAsync(Timeout));
        Assert.Contains("B is not connected", e.Message);
        Assert.Equal(("unrecoverable", 1L), (pair.A.Volume.Integrity.Snapshot.Last!.Outcome, pair.A.Volume.Integrity.Snapshot.Unrecoverable));

        await pair.ConnectAsync();
        var back = new byte[Unit];
        await pair.A.Volume.ReadAsync(0, back).AsTask().WaitAsync(Timeout);
        Assert.Equal(data, back);
        Assert.Equal(1, pair.A.Volume.Integrity.Snapshot.Healed);
    }

    [Theory]
    [InlineData("A")]
    [InlineData("B")]
    public async Task A_write_of_part_of_a_damaged_block_repairs_the_block_first_and_loses_nothing(string writer)
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        var data = Pattern(Unit, seed: 4);
        await pair.A.Volume.WriteAsync(0, data, IoFlags.None);
        pair.A.Corrupt((2 * Block) + 3000);
        var piece = Pattern(512, seed: 5);

        await pair.Side(writer).Volume.WriteAsync((2 * Block) + 512, piece, IoFlags.None).AsTask().WaitAsync(Timeout);
        piece.CopyTo(data, (2 * Block) + 512);

        Assert.Equal(data, await pair.A.ReadLocalAsync(0, Unit));
        Assert.Equal(data, await pair.B.ReadLocalAsync(0, Unit));
        Assert.Equal(1, pair.A.Volume.Integrity.Snapshot.Healed);
    }

    [Fact]
    public async Task A_write_carries_the_checksums_computed_where_it_entered_and_the_peer_stores_them()
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        var data = Pattern(2 * Block, seed: 6);
        await pair.B.Volume.WriteAsync(Block, data, IoFlags.None);

        var forwarded = Assert.Single(pair.A.Received.Of(PeerCall.Forward)).Op!.Value;
        var replicated = Assert.Single(pair.B.Received.Of(PeerCall.Replicate)).Op!.Value;
        Assert.Equal(BlockChecksum.Of(data.AsSpan(Block)), BlockChecksum.Get(forwarded.Checksums.Span, 1));
        Assert.Equal(forwarded.Checksums.ToArray(), replicated.Checksums.ToArray());
        var unaligned = Pattern(100, seed: 7);
        await pair.A.Volume.WriteAsync(10, unaligned, IoFlags.None);
        Assert.True(pair.B.Received.Of(PeerCall.Replicate)[^1].Op!.Value.Checksums.IsEmpty);
    }

    [Theory]
    [InlineData("A")]
    [InlineData("B")]
    public async Task A_checksum_resync_takes_each_block_from_the_side_where_it_is_intact_and_never_spreads_damage(string damaged)
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        var data = Pattern(4 * Unit, seed: 8);
        await pair.A.Volume.WriteAsync(0, data, IoFlags.None);
        pair.Side(damaged).Corrupt(Unit + 5);
        pair.Side(damaged).Corrupt((3 * Unit) + Block + 5);

        var before = await new VolumeVerifier(pair.A.Volume, Block).RunAsync(CancellationToken.None).WaitAsync(Timeout);
        var side = damaged == "A" ? DamagedReplica.Local : DamagedReplica.Peer;
        Assert.Equal([new DifferingRange(Unit, Block, side), new DifferingRange((3 * Unit) + Block, Block, side)], before.Differing);

        var completed = pair.A.Volume.Resync.Progress.Completed;
        pair.A.Volume.StartChecksumResync();
        await pair.WaitForResyncAsync(pair.A, completed + 1);

        Assert.Equal(data, await pair.A.ReadLocalAsync(0, 4 * Unit));
        Assert.Equal(data, await pair.B.ReadLocalAsync(0, 4 * Unit));
        Assert.Equal(0, (await new VolumeVerifier(pair.B.Volume).RunAsync(CancellationToken.None).WaitAsync(Timeout)).DifferingRegions);
    }

    [Fact]
    public async Task A_block_damaged_on_the_resync_source_with_no_good_copy_is_not_sent_and_its_region_stays_marked()
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        await pair.DisconnectAsync();
        var data = Pattern(Unit, seed: 9);
        await pair.A.Volume.WriteAsync(0, data, IoFlags.None);
        pair.A.Corrupt((4 * Block) + 1);

        await pair.ConnectAsync();
        await Eventually.TrueAsync(() => pair.A.Replica.OutOfSyncBytes == pair.A.Replica.Granularity, "A sends everything but the damaged block");
        await Eventually.HoldsAsync(() => pair.A.Replica.IsMarked(4 * Block, Block), "the damaged block's region stays marked");
        Assert.Equal(data.AsSpan(0, 4 * Block).ToArray(), await pair.B.ReadLocalAsync(0, 4 * Block));
        Assert.Equal(new byte[Block], await pair.B.ReadLocalAsync(4 * Block, Block));
        Assert.True(pair.A.Volume.Integrity.Snapshot.Unrecoverable >= 1);

        // The client rewrites the block: the resync then completes.
        await pair.A.Volume.WriteAsync(4 * Block, data.AsMemory(4 * Block, Block), IoFlags.None);
        await pair.WaitForResyncAsync(pair.A);
        Assert.Equal(data, await pair.B.ReadLocalAsync(0, Unit));
    }
}

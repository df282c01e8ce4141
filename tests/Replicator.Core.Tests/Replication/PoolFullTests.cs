using Replicator.Core.Devices;
using Replicator.Core.Replication;
using Replicator.Core.Tests.Replication.Support;
using static Replicator.Core.Tests.Replication.Support.PoolDataFaults;
using static Replicator.Core.Tests.Replication.Support.ReplicaData;

namespace Replicator.Core.Tests.Replication;

/// <summary>
/// A full pool on one side leaves the pair visibly degraded: that replica is detached (its pool full), the
/// other writes alone only with the witness's vote and marks what it misses, and once space is freed the
/// replica is attached again and resynced by bitmap (a full pool loses nothing it held).
/// </summary>
public sealed class PoolFullTests
{
    private const int Unit = ReplicaSide.UnitSize;
    private static readonly TimeSpan Timeout = ReplicaPair.Timeout;

    [Fact]
    public async Task When_the_peers_pool_is_full_writes_go_on_with_the_vote_and_the_peer_is_detached_not_counted_in_sync()
    {
        await using var pair = await ReplicaPair.ConnectedAsync(preferred: "A");
        pair.B.PoolDisk.Fail(StoreCall.Write, ENOSPC, int.MaxValue);
        var data = Pattern(2 * Unit, seed: 20);

        await pair.A.Volume.WriteAsync(0, data, IoFlags.None).AsTask().WaitAsync(Timeout);
        await pair.WaitForRepairsAsync();

        AssertPoolFull(pair.B);
        Assert.False(pair.A.Session!.PeerHasDisk);
        Assert.True(pair.A.Volume.WritesWithoutPeer);
        Assert.True(pair.A.Quorum.Claims > 0, "A writes alone only with the witness's vote");
        Assert.Equal(2L * Unit, pair.A.Replica.OutOfSyncBytes);
        Assert.False(pair.A.Replica.Status.PeerLostWrites, "a full pool loses nothing it held: no compare resync is due");
        Assert.Equal(data, await ReadAsync(pair.B.Volume, 0, data.Length));
    }

    [Fact]
    public async Task Without_the_vote_a_write_the_full_peer_cannot_store_is_refused()
    {
        await using var pair = await ReplicaPair.ConnectedAsync(preferred: "A");
        pair.B.PoolDisk.Fail(StoreCall.Write, ENOSPC, int.MaxValue);
        pair.A.Quorum.Refuses = true;

        var refused = await Assert.ThrowsAsync<BlockDeviceException>(() => pair.A.Volume.WriteAsync(0, Pattern(4096, seed: 21), IoFlags.None).AsTask().WaitAsync(Timeout));
        await pair.WaitForRepairsAsync();
        var again = await Assert.ThrowsAsync<BlockDeviceException>(() => pair.B.Volume.WriteAsync(Unit, Pattern(4096, seed: 22), IoFlags.None).AsTask().WaitAsync(Timeout));

        Assert.Equal(StorageError.NotPermitted, refused.Error);
        Assert.Equal(StorageError.NotPermitted, again.Error);
        AssertPoolFull(pair.B);
    }

    [Fact]
    public async Task When_the_owners_pool_is_full_its_clients_writes_go_through_the_peer_and_space_freed_brings_it_back_by_bitmap()
    {
        await using var pair = await ReplicaPair.ConnectedAsync(preferred: "A");
        await pair.A.Volume.WriteAsync(0, Pattern(Unit, seed: 23), IoFlags.None);
        pair.A.PoolDisk.Fail(StoreCall.Write, ENOSPC, int.MaxValue);
        var data = Pattern(3 * Unit, seed: 24);

        await pair.A.Volume.WriteAsync(Unit, data, IoFlags.None).AsTask().WaitAsync(Timeout);
        await pair.WaitForRepairsAsync();
        await pair.A.Volume.WriteAsync(8 * Unit, data, IoFlags.None).AsTask().WaitAsync(Timeout);

        AssertPoolFull(pair.A);
        Assert.True(pair.B.Session!.LocalIsOwner);
        Assert.Equal(data, await ReadAsync(pair.A.Volume, Unit, data.Length));
        Assert.Equal(data, await pair.B.ReadLocalAsync(8 * Unit, data.Length));

        pair.A.PoolDisk.Heal();
        pair.A.Volume.AttachDisk();
        await pair.WaitForRepairsAsync();
        await pair.WaitForResyncAsync(pair.B);

        await AssertIdenticalAsync(pair);
        Assert.Equal(0, pair.B.Volume.Resync.ComparedBytes);
        Assert.Equal(ReplicaDiskState.UpToDate, pair.A.Replica.DiskState);
        Assert.Equal(ReplicaFlags.None, pair.A.Replica.Status.Flags & (ReplicaFlags.PoolFull | ReplicaFlags.DiskFailed));
    }

    private static void AssertPoolFull(ReplicaSide side)
    {
        Assert.False(side.Volume.DiskUsable);
        Assert.Equal(DiskAttachment.Full, side.Volume.PairingState.Disk);
        Assert.Equal(ReplicaDiskState.Diskless, side.Replica.DiskState);
        Assert.Equal(ReplicaFlags.PoolFull, side.Replica.Status.Flags & (ReplicaFlags.DiskFailed | ReplicaFlags.PoolFull));
    }
}

using Replicator.Core.Devices;
using Replicator.Core.Replication;
using Replicator.Core.Tests.Replication.Support;
using static Replicator.Core.Tests.Replication.Support.PoolDataFaults;
using static Replicator.Core.Tests.Replication.Support.ReplicaData;

namespace Replicator.Core.Tests.Replication;

/// <summary>
/// An I/O error on a replica's pool is a failed disk (DRBD's on-io-error detach): the replica is detached,
/// its node keeps its clients through the peer, the peer marks what it misses, and once an admin attached
/// the repaired disk the resync brings it back. Faults come from the backing store under one side's pool.
/// </summary>
public sealed class DiskFailureTests
{
    private const int Unit = ReplicaSide.UnitSize;
    private static readonly TimeSpan Timeout = ReplicaPair.Timeout;

    [Fact]
    public async Task A_write_the_owners_disk_fails_is_acknowledged_through_the_peer_and_the_owner_detaches()
    {
        await using var pair = await ReplicaPair.ConnectedAsync(preferred: "A");
        await pair.A.Volume.WriteAsync(0, Pattern(Unit, seed: 1), IoFlags.None);
        pair.A.PoolDisk.Fail(StoreCall.Write, EIO);
        var data = Pattern(4096, seed: 2);

        await pair.A.Volume.WriteAsync(0, data, IoFlags.None).AsTask().WaitAsync(Timeout);
        await pair.WaitForRepairsAsync();

        AssertDetached(pair.A, ReplicaFlags.DiskFailed);
        Assert.True(pair.B.Session!.LocalIsOwner);
        Assert.False(pair.B.Session.PeerHasDisk);
        Assert.False(pair.A.Session!.LocalHasDisk);
        Assert.True(pair.B.Replica.Status.PeerLostWrites);
        Assert.True(pair.B.Replica.IsMarked(0, 4096), "B's bitmap marks the write A's disk missed");
        Assert.True(pair.B.Quorum.Claims > 0, "B asked the witness before it wrote alone");
        Assert.Equal(data, await pair.B.ReadLocalAsync(0, 4096));
        Assert.Equal(data, await ReadAsync(pair.A.Volume, 0, 4096));
    }

    [Fact]
    public async Task A_node_whose_disk_failed_keeps_serving_its_clients_through_the_peer_until_the_disk_is_attached_again()
    {
        await using var pair = await ReplicaPair.ConnectedAsync(preferred: "A");
        await pair.A.Volume.WriteAsync(0, Pattern(2 * Unit, seed: 3), IoFlags.None);
        pair.A.PoolDisk.Fail(StoreCall.Write, EIO, int.MaxValue);
        await pair.A.Volume.WriteAsync(100, Pattern(4096, seed: 4), IoFlags.None).AsTask().WaitAsync(Timeout);
        await pair.WaitForRepairsAsync();

        var later = Pattern(3 * Unit, seed: 5);
        await pair.A.Volume.WriteAsync(Unit, later, IoFlags.None).AsTask().WaitAsync(Timeout);
        await pair.A.Volume.TrimAsync(5 * Unit, Unit, IoFlags.None).AsTask().WaitAsync(Timeout);
        await pair.A.Volume.FlushAsync().AsTask().WaitAsync(Timeout);
        Assert.Equal(later, await ReadAsync(pair.A.Volume, Unit, later.Length));
        Assert.NotEqual(later, await pair.A.ReadLocalAsync(Unit, later.Length));

        // The admin repairs the disk and attaches it: every region is compared, the marked ones are sent.
        pair.A.PoolDisk.Heal();
        pair.A.Volume.AttachDisk();
        await pair.WaitForRepairsAsync();
        await pair.WaitForResyncAsync(pair.B);

        await AssertIdenticalAsync(pair);
        Assert.Equal(ReplicaDiskState.UpToDate, pair.A.Replica.DiskState);
        Assert.Equal(ReplicaFlags.None, pair.A.Replica.Status.Flags & (ReplicaFlags.DiskFailed | ReplicaFlags.PoolFull));
        Assert.False(pair.B.Replica.Status.PeerLostWrites);
        Assert.True(pair.B.Volume.Resync.ComparedBytes > 0, "a disk that failed is compared, not trusted");
        Assert.True(pair.A.Volume.DiskUsable);
        Assert.True(pair.A.Session!.LocalHasDisk && pair.A.Session.PeerHasDisk);
    }

    [Fact]
    public async Task A_write_the_peers_disk_fails_is_acknowledged_and_the_peer_detaches_and_reads_through_the_owner()
    {
        await using var pair = await ReplicaPair.ConnectedAsync(preferred: "A");
        pair.B.PoolDisk.Fail(StoreCall.Write, EIO);
        var data = Pattern(4096, seed: 6);

        await pair.A.Volume.WriteAsync(Unit, data, IoFlags.None).AsTask().WaitAsync(Timeout);
        await pair.WaitForRepairsAsync();

        AssertDetached(pair.B, ReplicaFlags.DiskFailed);
        Assert.True(pair.A.Replica.Status.PeerLostWrites);
        Assert.True(pair.A.Replica.IsMarked(Unit, 4096));
        Assert.False(pair.A.Session!.PeerHasDisk);
        Assert.Equal(data, await ReadAsync(pair.B.Volume, Unit, 4096));
        var through = Pattern(4096, seed: 7);
        await pair.B.Volume.WriteAsync(2 * Unit, through, IoFlags.None).AsTask().WaitAsync(Timeout);
        Assert.Equal(through, await pair.A.ReadLocalAsync(2 * Unit, 4096));
    }

    [Fact]
    public async Task A_flush_that_fails_on_the_peer_is_durable_here_and_the_peer_is_detached_and_recorded()
    {
        await using var pair = await ReplicaPair.ConnectedAsync(preferred: "A");
        await pair.A.Volume.WriteAsync(0, Pattern(4096, seed: 8), IoFlags.None);
        pair.B.PoolDisk.Fail(StoreCall.Flush, EIO);

        await pair.A.Volume.FlushAsync().AsTask().WaitAsync(Timeout);
        await pair.WaitForRepairsAsync();

        AssertDetached(pair.B, ReplicaFlags.DiskFailed);
        Assert.True(pair.A.Replica.Status.PeerLostWrites, "A must know B may have dropped writes it had acknowledged");
    }

    [Fact]
    public async Task A_flush_that_fails_with_no_space_counts_as_a_failed_disk_not_a_full_pool()
    {
        // An fsync that fails may have dropped written pages, whatever its errno: the next resync must compare.
        await using var pair = await ReplicaPair.ConnectedAsync(preferred: "A");
        await pair.A.Volume.WriteAsync(0, Pattern(4096, seed: 17), IoFlags.None);
        pair.B.PoolDisk.Fail(StoreCall.Flush, ENOSPC);

        await pair.A.Volume.FlushAsync().AsTask().WaitAsync(Timeout);
        await pair.WaitForRepairsAsync();

        AssertDetached(pair.B, ReplicaFlags.DiskFailed);
        Assert.True(pair.A.Replica.Status.PeerLostWrites);
    }

    [Fact]
    public async Task A_flush_that_fails_on_the_owner_is_durable_on_the_peer_which_holds_every_write()
    {
        await using var pair = await ReplicaPair.ConnectedAsync(preferred: "A");
        await pair.A.Volume.WriteAsync(0, Pattern(4096, seed: 9), IoFlags.None);
        pair.A.PoolDisk.Fail(StoreCall.Flush, EIO);

        await pair.A.Volume.FlushAsync().AsTask().WaitAsync(Timeout);
        await pair.WaitForRepairsAsync();

        AssertDetached(pair.A, ReplicaFlags.DiskFailed);
        Assert.True(pair.B.Session!.LocalIsOwner);
    }

    [Fact]
    public async Task A_flush_that_failed_on_the_only_copy_is_never_reported_durable_afterwards()
    {
        // Linux drops the pages of a failed fsync, so a second fsync succeeds: the replica must not trust it.
        await using var pair = await ReplicaPair.ConnectedAsync(preferred: "A");
        await pair.DisconnectAsync();
        await pair.A.Volume.WriteAsync(0, Pattern(4096, seed: 10), IoFlags.None);
        pair.A.PoolDisk.Fail(StoreCall.Flush, EIO);

        var first = await Assert.ThrowsAsync<BlockDeviceException>(() => pair.A.Volume.FlushAsync().AsTask());
        var second = await Assert.ThrowsAsync<BlockDeviceException>(() => pair.A.Volume.FlushAsync().AsTask());

        Assert.Equal(StorageError.Io, first.Error);
        Assert.Equal(StorageError.Io, second.Error);
        AssertDetached(pair.A, ReplicaFlags.DiskFailed);
        var write = await Assert.ThrowsAsync<BlockDeviceException>(() => pair.A.Volume.WriteAsync(0, Pattern(4096, seed: 11), IoFlags.None).AsTask());
        Assert.Equal(StorageError.Io, write.Error);
    }

    [Fact]
    public async Task Without_a_peer_a_failed_fsync_fails_every_later_flush_until_the_disk_is_attached_again()
    {
        using var alone = new ReplicaSide("A", peerName: null, Guid.NewGuid(), ReplicaPair.DefaultSize);
        var data = Pattern(4096, seed: 16);
        await alone.Volume.WriteAsync(0, data, IoFlags.None);
        alone.PoolDisk.Fail(StoreCall.Flush, EIO);

        await Assert.ThrowsAsync<BlockDeviceException>(() => alone.Volume.FlushAsync().AsTask());
        var again = await Assert.ThrowsAsync<BlockDeviceException>(() => alone.Volume.FlushAsync().AsTask());
        var read = await Assert.ThrowsAsync<BlockDeviceException>(() => ReadAsync(alone.Volume, 0, 4096));
        var write = await Assert.ThrowsAsync<BlockDeviceException>(() => alone.Volume.WriteAsync(0, data, IoFlags.None).AsTask());

        Assert.Equal(StorageError.Io, again.Error);
        Assert.Equal(StorageError.Io, read.Error);
        Assert.Equal(StorageError.Io, write.Error);
        AssertDetached(alone, ReplicaFlags.DiskFailed);

        alone.Volume.AttachDisk();
        await alone.Volume.FlushAsync();
        Assert.Equal(data, await ReadAsync(alone.Volume, 0, 4096));
        Assert.Equal(ReplicaDiskState.UpToDate, alone.Replica.DiskState);
        Assert.Equal(ReplicaFlags.None, alone.Replica.Status.Flags);
    }

    [Fact]
    public async Task A_flush_the_owner_fails_while_the_peer_lacks_writes_fails()
    {
        // B missed a write (its link was cut while A wrote); A's flush then fails: no copy holds every write durably.
        await using var pair = await ReplicaPair.ConnectedAsync(preferred: "A");
        await pair.DisconnectAsync();
        await pair.A.Volume.WriteAsync(0, Pattern(4096, seed: 12), IoFlags.None);
        var resync = pair.B.Hold(PeerCall.Resync);
        var pending = await pair.BeginPairingAsync();
        pending.Attach(pending.NonOwner);
        pending.Attach(pending.Owner);
        Assert.Equal(SyncRole.Source, pair.A.Session!.Role);
        pair.A.PoolDisk.Fail(StoreCall.Flush, EIO);

        var flush = await Assert.ThrowsAsync<BlockDeviceException>(() => pair.A.Volume.FlushAsync().AsTask().WaitAsync(Timeout));
        Assert.Equal(StorageError.Io, flush.Error);

        // No copy holds every write: once the run in flight lands, the pairing that follows is refused, and says why.
        var sentBefore = pair.B.Received.Count(PeerCall.Resync);
        resync.Open();
        await pair.WaitForRepairsAsync();
        Assert.Equal(sentBefore, pair.B.Received.Count(PeerCall.Resync));
        Assert.Equal(PairingPhase.Refused, pair.A.Volume.PairingState.Phase);
        Assert.Contains("not up to date", pair.A.Volume.PairingState.Problem);
    }

    [Fact]
    public async Task A_read_the_disk_fails_is_answered_from_the_peer()
    {
        await using var pair = await ReplicaPair.ConnectedAsync(preferred: "A");
        var data = Pattern(4096, seed: 13);
        await pair.A.Volume.WriteAsync(0, data, IoFlags.None);
        pair.A.PoolDisk.Fail(StoreCall.Read, EIO);

        Assert.Equal(data, await ReadAsync(pair.A.Volume, 0, 4096).WaitAsync(Timeout));
        await pair.WaitForRepairsAsync();

        AssertDetached(pair.A, ReplicaFlags.DiskFailed);
        Assert.Equal(1, pair.B.Received.Count(PeerCall.Read));
    }

    [Fact]
    public async Task A_detached_replica_reports_its_whole_range_as_data_since_its_holes_may_be_data_on_the_peer()
    {
        await using var pair = await ReplicaPair.ConnectedAsync(preferred: "A");
        pair.A.PoolDisk.Fail(StoreCall.Write, EIO);
        await pair.A.Volume.WriteAsync(0, Pattern(4096, seed: 14), IoFlags.None).AsTask().WaitAsync(Timeout);
        await pair.WaitForRepairsAsync();

        var extents = await pair.A.Volume.GetAllocationAsync(0, 4 * Unit);

        Assert.Equal([new AllocationExtent(4 * Unit, AllocationState.Data)], extents);
    }

    [Fact]
    public async Task Attaching_a_disk_that_still_fails_is_refused_and_it_stays_detached()
    {
        await using var pair = await ReplicaPair.ConnectedAsync(preferred: "A");
        await pair.A.Volume.WriteAsync(0, Pattern(4096, seed: 15), IoFlags.None);
        pair.A.PoolDisk.Fail(StoreCall.Read, EIO);
        await ReadAsync(pair.A.Volume, 0, 4096).WaitAsync(Timeout);
        await pair.WaitForRepairsAsync();
        pair.A.PoolDisk.Fail(StoreCall.Flush, EIO, int.MaxValue);

        var refused = Assert.Throws<BlockDeviceException>(() => pair.A.Volume.AttachDisk());
        var attached = Assert.Throws<PairingRejectedException>(() => pair.B.Volume.AttachDisk());

        Assert.Equal(StorageError.Io, refused.Error);
        Assert.Contains("attached", attached.Message);
        AssertDetached(pair.A, ReplicaFlags.DiskFailed);
        Assert.Equal(1, pair.Repairs);
    }

    private static void AssertDetached(ReplicaSide side, ReplicaFlags reason)
    {
        Assert.False(side.Volume.DiskUsable);
        Assert.Equal(ReplicaDiskState.Diskless, side.Replica.DiskState);
        Assert.Equal(reason, side.Replica.Status.Flags & (ReplicaFlags.DiskFailed | ReplicaFlags.PoolFull));
    }
}

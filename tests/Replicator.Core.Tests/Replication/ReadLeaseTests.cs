using System.Diagnostics;
using Replicator.Core.Devices;
using Replicator.Core.Replication;
using Replicator.Core.Tests.Replication.Support;
using static Replicator.Core.Tests.Replication.Support.ReplicaData;

namespace Replicator.Core.Tests.Replication;

/// <summary>
/// Paired reads follow the read lease: a replica serves no read once its lease lapses, and a node
/// that writes alone first waits out the lease it granted, so no read anywhere returns data older
/// than a write already acknowledged.
/// </summary>
public sealed class ReadLeaseTests
{
    private static readonly TimeSpan Timeout = ReplicaPair.Timeout;

    [Fact]
    public async Task A_lease_is_held_while_renewed_lapses_without_renewal_and_ends_with_the_connection()
    {
        var lease = new PeerReadLease();
        Assert.False(lease.IsHeld);

        lease.Renew(Stopwatch.GetTimestamp(), TimeSpan.FromSeconds(10));
        Assert.True(lease.IsHeld);
        Assert.True(await lease.WaitHeldAsync(Timeout, CancellationToken.None));

        var lapsed = new PeerReadLease();
        lapsed.Renew(Stopwatch.GetTimestamp(), TimeSpan.FromMilliseconds(30));
        await Task.Delay(60);
        Assert.False(lapsed.IsHeld);
        var waiting = lapsed.WaitHeldAsync(Timeout, CancellationToken.None).AsTask();
        Assert.False(waiting.IsCompleted);
        lapsed.Renew(Stopwatch.GetTimestamp(), TimeSpan.FromSeconds(10));
        Assert.True(await waiting.WaitAsync(Timeout));

        lease.Close();
        Assert.False(lease.IsHeld);
        Assert.False(await lease.WaitHeldAsync(Timeout, CancellationToken.None));
        lease.Renew(Stopwatch.GetTimestamp(), TimeSpan.FromSeconds(10));
        Assert.False(lease.IsHeld);
    }

    [Fact]
    public async Task A_promise_holds_until_the_connection_ends_and_then_for_the_lease_it_granted()
    {
        var lease = new PeerReadLease();
        Assert.True(lease.TryGrant(TimeSpan.FromMilliseconds(200)));

        var waiting = lease.WaitGrantsExpiredAsync(Timeout, CancellationToken.None).AsTask();
        await Task.Delay(300);
        Assert.False(waiting.IsCompleted, "the promise outlives its lease while the connection is up");

        lease.Close();
        await waiting.WaitAsync(Timeout);
        Assert.True(lease.GrantsExpired);
        Assert.False(lease.TryGrant(TimeSpan.FromSeconds(1)));

        var fresh = new PeerReadLease();
        var clock = Stopwatch.StartNew();
        Assert.True(fresh.TryGrant(TimeSpan.FromMilliseconds(200)));
        fresh.Close();
        await fresh.WaitGrantsExpiredAsync(Timeout, CancellationToken.None);
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(200), $"returned {clock.Elapsed.TotalMilliseconds:F0} ms after the grant");
    }

    [Fact]
    public async Task A_node_just_started_writes_alone_only_once_what_its_previous_process_may_have_promised_has_run_out()
    {
        var clock = Stopwatch.StartNew();
        using var side = new ReplicaSide("A", "B", Guid.NewGuid(), ReplicaPair.DefaultSize,
            earlierPromise: PeerReadLease.PromisedBeforeThisProcess(TimeSpan.FromMilliseconds(300)));

        var data = Pattern(4096, seed: 41);
        await side.Volume.WriteAsync(0, data, IoFlags.None).AsTask().WaitAsync(Timeout);
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(300), $"wrote alone {clock.Elapsed.TotalMilliseconds:F0} ms after the start, inside the promise");
        Assert.Equal(data, await side.ReadLocalAsync(0, data.Length));
    }

    [Fact]
    public async Task A_paired_replica_whose_pongs_are_late_waits_to_read_until_its_lease_is_renewed()
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        var data = Pattern(4096, seed: 31);
        await pair.A.Volume.WriteAsync(0, data, IoFlags.None).AsTask().WaitAsync(Timeout);

        pair.Link!.PausePings();
        await Task.Delay(MemoryLink.LeaseDuration * 2);
        var read = ReadAsync(pair.B.Volume, 0, data.Length);
        await Task.Delay(MemoryLink.LeaseDuration);
        Assert.False(read.IsCompleted, "B read without a lease");

        pair.Link.ResumePings();
        Assert.Equal(data, await read.WaitAsync(Timeout));
    }

    [Fact]
    public async Task After_the_link_goes_silent_the_node_that_has_not_noticed_serves_nothing_older_than_the_write_the_other_acknowledged_alone()
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        var before = Pattern(4096, seed: 32);
        var after = Pattern(4096, seed: 33);
        await pair.A.Volume.WriteAsync(0, before, IoFlags.None).AsTask().WaitAsync(Timeout);
        pair.B.Quorum.Refuses = true;

        // The link goes silent. A notices first (its connection ends) and writes alone, with the vote.
        pair.Link!.Partition();
        var write = pair.A.Volume.WriteAsync(0, after, IoFlags.None).AsTask();
        pair.Link.LeaseA.Close();
        await pair.A.Volume.DetachAsync(pair.A.Session!).WaitAsync(Timeout);
        await write.WaitAsync(Timeout);

        // B has not noticed and still counts as paired, yet it no longer holds the lease: its read
        // waits until its connection ends, and then B, without the vote, refuses it.
        Assert.NotNull(pair.B.Volume.Session);
        var read = ReadAsync(pair.B.Volume, 0, 4096);
        await Task.Delay(MemoryLink.LeaseDuration);
        Assert.False(read.IsCompleted, "B served a read after A acknowledged a write B lacks");
        pair.Link.LeaseB.Close();
        await pair.B.Volume.DetachAsync(pair.B.Session!).WaitAsync(Timeout);

        var refused = await Assert.ThrowsAsync<BlockDeviceException>(() => read.WaitAsync(Timeout));
        Assert.Equal(StorageError.NotPermitted, refused.Error);
        Assert.Equal(after, await pair.A.ReadLocalAsync(0, 4096));
    }

    [Fact]
    public async Task A_write_the_peer_refused_is_acknowledged_without_waiting_for_the_connection_to_end()
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        pair.B.Incoming = (request, _) => request.Call == PeerCall.Replicate
            ? throw new BlockDeviceException(StorageError.Io, "the disk failed")
            : ValueTask.CompletedTask;

        // The link stays up, so the lease A granted never ends; B stopped counting the range as its own.
        await pair.A.Volume.WriteAsync(0, Pattern(4096, seed: 34), IoFlags.None).AsTask().WaitAsync(Timeout);
        Assert.NotNull(pair.A.Volume.Session);
        Assert.False(pair.Link!.LeaseA.IsClosed);
    }
}

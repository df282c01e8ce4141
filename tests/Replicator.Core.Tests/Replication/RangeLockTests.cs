using Replicator.Core.Replication;

namespace Replicator.Core.Tests.Replication;

public class RangeLockTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Disjoint_ranges_are_held_at_the_same_time()
    {
        var ranges = new RangeLock();
        var a = ranges.AcquireAsync(0, 10);
        var b = ranges.AcquireAsync(10, 10);
        var c = ranges.AcquireAsync(1000, 1);
        Assert.True(a.IsCompletedSuccessfully && b.IsCompletedSuccessfully && c.IsCompletedSuccessfully);
        Assert.Equal(3, ranges.Holders);
        (await a).Dispose();
        (await b).Dispose();
        (await c).Dispose();
        Assert.Equal(0, ranges.Holders);
    }

    [Fact]
    public async Task Overlapping_requests_are_granted_in_the_order_they_arrived()
    {
        var ranges = new RangeLock();
        var first = await ranges.AcquireAsync(0, 100);
        var order = new List<string>();
        var waits = new[] { ("b", 50L, 10L), ("c", 0L, 60L), ("d", 55L, 1L) }
            .Select(r => Record(ranges.AcquireAsync(r.Item2, r.Item3), r.Item1, order)).ToArray();
        Assert.Equal(3, ranges.Waiters);

        first.Dispose();
        for (var i = 0; i < waits.Length; i++)
        {
            var releaser = await waits[i].WaitAsync(Timeout);
            Assert.Equal(2 - i, ranges.Waiters);
            releaser.Dispose();
        }

        Assert.Equal(["b", "c", "d"], order);
    }

    [Fact]
    public async Task A_request_waits_for_an_earlier_overlapping_waiter_even_when_no_holder_touches_it()
    {
        var ranges = new RangeLock();
        var a = await ranges.AcquireAsync(0, 10);
        var b = ranges.AcquireAsync(5, 10).AsTask();
        var c = ranges.AcquireAsync(12, 8).AsTask();
        await Task.Delay(20);
        Assert.False(b.IsCompleted);
        Assert.False(c.IsCompleted);

        a.Dispose();
        var bHeld = await b.WaitAsync(Timeout);
        await Task.Delay(20);
        Assert.False(c.IsCompleted);

        bHeld.Dispose();
        (await c.WaitAsync(Timeout)).Dispose();
        Assert.Equal((0, 0), (ranges.Holders, ranges.Waiters));
    }

    [Fact]
    public async Task A_request_disjoint_from_every_earlier_one_does_not_queue_behind_waiters()
    {
        var ranges = new RangeLock();
        using var a = await ranges.AcquireAsync(0, 10);
        var b = ranges.AcquireAsync(5, 10);
        var d = ranges.AcquireAsync(100, 10);
        Assert.False(b.IsCompleted);
        Assert.True(d.IsCompletedSuccessfully);
        (await d).Dispose();
        a.Dispose();
        (await b.AsTask().WaitAsync(Timeout)).Dispose();
    }

    [Fact]
    public async Task Cancelling_a_waiter_removes_it_and_lets_the_requests_behind_it_proceed()
    {
        var ranges = new RangeLock();
        using var a = await ranges.AcquireAsync(0, 10);
        using var cts = new CancellationTokenSource();
        var b = ranges.AcquireAsync(5, 10, cts.Token).AsTask();
        var c = ranges.AcquireAsync(12, 8).AsTask();
        Assert.Equal(2, ranges.Waiters);

        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => b.WaitAsync(Timeout));
        (await c.WaitAsync(Timeout)).Dispose();
        Assert.Equal((1, 0), (ranges.Holders, ranges.Waiters));
    }

    [Fact]
    public async Task Cancelling_after_the_grant_changes_nothing()
    {
        var ranges = new RangeLock();
        var a = await ranges.AcquireAsync(0, 10);
        using var cts = new CancellationTokenSource();
        var b = ranges.AcquireAsync(0, 10, cts.Token);
        a.Dispose();
        var held = await b.AsTask().WaitAsync(Timeout);
        await cts.CancelAsync();
        Assert.Equal(1, ranges.Holders);
        Assert.False(ranges.AcquireAsync(5, 1).IsCompleted);
        held.Dispose();
    }

    [Fact]
    public async Task An_already_cancelled_token_fails_at_once_and_queues_nothing()
    {
        var ranges = new RangeLock();
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        var wait = ranges.AcquireAsync(0, 10, cts.Token);
        Assert.True(wait.IsCanceled);
        Assert.Equal((0, 0), (ranges.Holders, ranges.Waiters));
    }

    [Fact]
    public async Task Releasing_twice_does_not_release_someone_elses_hold()
    {
        var ranges = new RangeLock();
        var a = await ranges.AcquireAsync(0, 10);
        var b = ranges.AcquireAsync(0, 10);
        a.Dispose();
        var bHeld = await b.AsTask().WaitAsync(Timeout);
        a.Dispose();
        Assert.Equal(1, ranges.Holders);
        Assert.False(ranges.AcquireAsync(0, 1).IsCompleted);
        bHeld.Dispose();
        default(RangeLock.Releaser).Dispose();
    }

    [Theory]
    [InlineData(-1L, 1L)]
    [InlineData(0L, 0L)]
    [InlineData(0L, -5L)]
    [InlineData(long.MaxValue, 2L)]
    public void Impossible_ranges_are_refused(long offset, long length)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new RangeLock().AcquireAsync(offset, length));
    }

    [Fact]
    public async Task An_uncontended_acquire_allocates_only_its_request_node()
    {
        var ranges = new RangeLock();
        (await ranges.AcquireAsync(0, 1)).Dispose();
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            var wait = ranges.AcquireAsync(i * 10L, 10);
            Assert.True(wait.IsCompletedSuccessfully);
            (await wait).Dispose();
        }

        var perAcquire = (GC.GetAllocatedBytesForCurrentThread() - before) / 1000;
        Assert.True(perAcquire <= 160, $"{perAcquire} bytes per uncontended acquire");
    }

    [Fact]
    public async Task Under_random_concurrent_load_overlapping_ranges_are_never_held_together_and_keep_their_arrival_order()
    {
        var ranges = new RangeLock();
        var gate = new Lock();
        var held = new List<(long Start, long End, long Arrival)>();
        var grants = new List<(long Start, long End, long Arrival)>();
        long arrivals = 0;
        var violations = 0;

        async Task Worker(int seed)
        {
            var random = new Random(seed);
            for (var i = 0; i < 400; i++)
            {
                var start = random.Next(0, 1000);
                var length = random.Next(1, 60);
                using var cts = random.Next(8) == 0 ? new CancellationTokenSource(TimeSpan.FromMilliseconds(random.Next(0, 2))) : null;
                ValueTask<RangeLock.Releaser> wait;
                long arrival;
                lock (gate)
                {
                    arrival = arrivals++;
                    wait = ranges.AcquireAsync(start, length, cts?.Token ?? default);
                }

                RangeLock.Releaser releaser;
                try
                {
                    releaser = await wait;
                }
                catch (OperationCanceledException)
                {
                    continue;
                }

                var entry = (Start: (long)start, End: (long)start + length, Arrival: arrival);
                lock (gate)
                {
                    violations += held.Count(h => h.Start < entry.End && entry.Start < h.End);
                    held.Add(entry);
                    grants.Add(entry);
                }

                if (random.Next(2) == 0)
                {
                    await Task.Yield();
                }

                lock (gate)
                {
                    held.Remove(entry);
                }

                releaser.Dispose();
            }
        }

        await Task.WhenAll(Enumerable.Range(0, 8).Select(seed => Task.Run(() => Worker(seed)))).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(0, violations);
        Assert.Equal((0, 0), (ranges.Holders, ranges.Waiters));
        for (var i = 0; i < grants.Count; i++)
        {
            for (var j = i + 1; j < grants.Count; j++)
            {
                if (grants[i].Start < grants[j].End && grants[j].Start < grants[i].End)
                {
                    Assert.True(grants[i].Arrival < grants[j].Arrival, $"{grants[j]} overtook {grants[i]}");
                }
            }
        }
    }

    private static async Task<RangeLock.Releaser> Record(ValueTask<RangeLock.Releaser> wait, string name, List<string> order)
    {
        var releaser = await wait;
        lock (order)
        {
            order.Add(name);
        }

        return releaser;
    }
}

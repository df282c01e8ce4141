using Replicator.Core.Replication;

namespace Replicator.Core.Tests.Replication;

public class ActivityLogTests
{
    private const long E = 4L << 20;

    [Fact]
    public void The_first_write_to_an_extent_must_persist_the_log_and_later_writes_need_no_io()
    {
        var log = new ActivityLog();
        var begin = log.Begin(E + 10, 4096);
        Assert.Equal(ActivityLogStatus.MustPersist, begin.Status);
        Assert.Equal(1, begin.Sequence);
        Assert.Equal([1L], begin.Update!.Added);
        Assert.Empty(begin.Update.Evicted);
        log.MarkDurable(begin.Sequence);
        log.End(E + 10, 4096, stamp: 1);

        Assert.Equal(ActivityLogBegin.Active, log.Begin(E, E));
        Assert.Equal(1, log.Sequence);
    }

    [Fact]
    public void A_write_to_an_extent_whose_record_is_not_yet_durable_waits_for_that_record()
    {
        var log = new ActivityLog();
        var first = log.Begin(0, 4096);
        var second = log.Begin(8192, 4096);
        Assert.Equal(new ActivityLogBegin(ActivityLogStatus.MustPersist, first.Sequence, null), second);
        log.MarkDurable(first.Sequence);
        Assert.Equal(ActivityLogStatus.Active, log.Begin(0, 1).Status);
    }

    [Fact]
    public void One_durable_snapshot_covers_every_update_up_to_its_sequence()
    {
        var log = new ActivityLog();
        var a = log.Begin(0, 1);
        var b = log.Begin(5 * E, 1);
        var snapshot = log.Snapshot();
        Assert.Equal(b.Sequence, snapshot.Sequence);
        Assert.Equal([0L, 5L], snapshot.Extents);
        log.MarkDurable(snapshot.Sequence);
        Assert.True(log.DurableSequence >= a.Sequence);
        Assert.Equal(ActivityLogStatus.Active, log.Begin(0, 1).Status);
        Assert.Equal(ActivityLogStatus.Active, log.Begin(5 * E, 1).Status);
    }

    [Fact]
    public void A_write_across_an_extent_boundary_makes_both_extents_hot()
    {
        var log = new ActivityLog();
        var begin = log.Begin(E - 1, 2);
        Assert.Equal([0L, 1L], begin.Update!.Added);
        Assert.True(log.End(E - 1, 2, stamp: 1));
        Assert.Equal(2, log.IdleExtents);
    }

    [Fact]
    public void Eviction_takes_the_least_recently_used_idle_extent()
    {
        var log = Filled(16);
        Touch(log, 0);
        var begin = log.Begin(100 * E, 1);
        Assert.Equal([100L], begin.Update!.Added);
        Assert.Equal([1L], begin.Update.Evicted);
        Assert.DoesNotContain(1L, log.ActiveExtents);
        Assert.Contains(0L, log.ActiveExtents);
        Assert.Equal(16, log.ActiveExtents.Count);
    }

    [Fact]
    public void Extents_with_writes_in_flight_are_never_evicted_and_a_full_log_changes_nothing()
    {
        var log = new ActivityLog(16);
        for (var e = 0; e < 16; e++)
        {
            log.Begin(e * E, 1);
        }

        log.MarkDurable(log.Sequence);
        var sequence = log.Sequence;
        Assert.Equal(ActivityLogBegin.Full, log.Begin(100 * E, 1));
        Assert.Equal(sequence, log.Sequence);
        Assert.DoesNotContain(100L, log.ActiveExtents);

        Assert.True(log.End(7 * E, 1, stamp: 1));
        var begin = log.Begin(100 * E, 1);
        Assert.Equal([7L], begin.Update!.Evicted);
    }

    [Fact]
    public void A_multi_extent_write_that_does_not_fit_takes_nothing()
    {
        var log = new ActivityLog(16);
        for (var e = 0; e < 16; e++)
        {
            log.Begin(e * E, 1);
        }

        log.End(3 * E, 1, stamp: 1);
        Assert.Equal(ActivityLogBegin.Full, log.Begin(100 * E, 2 * E));
        Assert.Equal(1, log.IdleExtents);
        Assert.Contains(3L, log.ActiveExtents);
        Assert.True(log.End(4 * E, 1, stamp: 1));
        Assert.Equal(2, log.IdleExtents);
    }

    [Fact]
    public void An_idle_extent_inside_the_range_is_not_counted_as_room_for_the_range()
    {
        var log = new ActivityLog(16);
        for (var e = 0; e < 16; e++)
        {
            log.Begin(e * E, 1);
        }

        log.End(15 * E, 1, stamp: 1);
        Assert.Equal(ActivityLogBegin.Full, log.Begin(15 * E, 2 * E));
        Assert.Equal(1, log.IdleExtents);
    }

    [Fact]
    public void A_range_spanning_more_extents_than_slots_is_refused()
    {
        var log = new ActivityLog(16);
        Assert.Throws<ArgumentException>(() => log.Begin(1, 16 * E));
        Assert.Equal(MustPersist, log.Begin(0, 16 * E).Status);
    }

    [Fact]
    public void End_counts_writes_in_flight_per_extent_and_refuses_an_end_without_a_begin()
    {
        var log = new ActivityLog();
        log.Begin(0, 1);
        log.Begin(0, 1);
        Assert.False(log.End(0, 1, stamp: 1));
        Assert.True(log.End(0, 1, stamp: 1));
        Assert.Throws<InvalidOperationException>(() => log.End(0, 1, stamp: 1));
        Assert.Throws<InvalidOperationException>(() => log.End(9 * E, 1, stamp: 1));
    }

    [Fact]
    public void Zero_length_ranges_touch_no_extent()
    {
        var log = new ActivityLog();
        Assert.Equal(ActivityLogBegin.Active, log.Begin(5 * E, 0));
        Assert.False(log.End(5 * E, 0, stamp: 1));
        Assert.Empty(log.ActiveExtents);
    }

    [Theory]
    [InlineData(-1L, 1L)]
    [InlineData(0L, -1L)]
    [InlineData(long.MaxValue, 2L)]
    public void Negative_or_overflowing_ranges_are_refused(long offset, long length)
    {
        var log = new ActivityLog();
        Assert.Throws<ArgumentOutOfRangeException>(() => log.Begin(offset, length));
    }

    [Theory]
    [InlineData(15, 4L << 20)]
    [InlineData((1 << 16) + 1, 4L << 20)]
    [InlineData(1024, 3L << 20)]
    [InlineData(1024, 32L << 10)]
    [InlineData(1024, 2L << 30)]
    public void Impossible_geometries_are_refused(int slots, long extentSize)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ActivityLog(slots, extentSize));
    }

    [Fact]
    public void A_restored_log_holds_the_loaded_extents_idle_and_durable()
    {
        var log = ActivityLog.Restore(new ActivityLogSnapshot(41, [3, 9]), 16);
        Assert.Equal(41, log.Sequence);
        Assert.Equal(41, log.DurableSequence);
        Assert.Equal(2, log.IdleExtents);
        Assert.Equal(ActivityLogBegin.Active, log.Begin(3 * E, 1));
        var next = log.Begin(20 * E, 1);
        Assert.Equal(42, next.Sequence);
        Assert.Equal((9 * E, E), log.ExtentRange(9));
        Assert.Throws<ArgumentOutOfRangeException>(() => log.MarkDurable(43));
    }

    [Fact]
    public void Restoring_more_extents_than_slots_or_a_duplicate_is_refused()
    {
        Assert.Throws<ArgumentException>(() => ActivityLog.Restore(new ActivityLogSnapshot(1, Enumerable.Range(0, 17).Select(i => (long)i).ToArray()), 16));
        Assert.Throws<ArgumentException>(() => ActivityLog.Restore(new ActivityLogSnapshot(1, [4, 4]), 16));
    }

    [Fact]
    public void Clearing_for_a_clean_shutdown_empties_the_log_once_every_write_ended()
    {
        var log = new ActivityLog(16);
        log.Begin(0, 1);
        log.Begin(3 * E, 1);
        log.MarkDurable(log.Sequence);
        Assert.Throws<InvalidOperationException>(() => log.Clear());
        log.End(0, 1, stamp: 1);
        log.End(3 * E, 1, stamp: 1);

        var update = log.Clear()!;
        Assert.Equal([0L, 3L], update.Evicted);
        Assert.Equal(log.Sequence, update.Sequence);
        Assert.Empty(log.Snapshot().Extents);
        Assert.Equal(0, log.IdleExtents);
        Assert.Null(log.Clear());
        Assert.Equal(ActivityLogStatus.MustPersist, log.Begin(0, 1).Status);
    }

    [Fact]
    public void Under_random_load_every_extent_with_a_write_in_flight_is_in_the_durable_set()
    {
        var random = new Random(99);
        var log = new ActivityLog(32, 1 << 20);
        var inFlight = new List<(long Offset, long Length)>();
        var durable = new HashSet<long>();
        for (var step = 0; step < 20_000; step++)
        {
            if (inFlight.Count > 0 && (random.Next(2) == 0 || inFlight.Count > 40))
            {
                var i = random.Next(inFlight.Count);
                log.End(inFlight[i].Offset, inFlight[i].Length, stamp: 1);
                inFlight.RemoveAt(i);
                continue;
            }

            var offset = random.Next(4) == 0 ? random.NextInt64(1L << 36) : random.NextInt64(64L << 20);
            var length = random.NextInt64(1, 3L << 20);
            var begin = log.Begin(offset, length);
            if (begin.Status == ActivityLogStatus.Full)
            {
                continue;
            }

            if (begin.Status == ActivityLogStatus.MustPersist && random.Next(3) > 0)
            {
                var snapshot = log.Snapshot();
                log.MarkDurable(snapshot.Sequence);
                durable = [.. snapshot.Extents];
            }

            if (log.DurableSequence >= begin.Sequence)
            {
                inFlight.Add((offset, length));
                foreach (var (o, l) in inFlight)
                {
                    for (var e = o >> 20; e <= (o + l - 1) >> 20; e++)
                    {
                        Assert.Contains(e, durable);
                    }
                }
            }
            else
            {
                log.End(offset, length, stamp: 1);
            }

            Assert.True(log.ActiveExtents.Count <= log.Slots);
        }
    }

    private const ActivityLogStatus MustPersist = ActivityLogStatus.MustPersist;

    private static ActivityLog Filled(int slots)
    {
        var log = new ActivityLog(slots);
        for (var e = 0; e < slots; e++)
        {
            log.Begin(e * E, 1);
            log.End(e * E, 1, stamp: 1);
        }

        log.MarkDurable(log.Sequence);
        return log;
    }

    private static void Touch(ActivityLog log, long extent)
    {
        Assert.Equal(ActivityLogBegin.Active, log.Begin(extent * E, 1));
        log.End(extent * E, 1, stamp: 1);
    }

    [Fact]
    public void An_eviction_requires_the_evicted_extents_writes_to_be_durable_before_the_snapshot_is_written()
    {
        var log = new ActivityLog(slots: ActivityLog.MinSlots);
        for (var extent = 0L; extent < ActivityLog.MinSlots; extent++)
        {
            log.Begin(extent * E, 1);
            log.End(extent * E, 1, stamp: extent + 1);
        }

        log.MarkDurable(log.Snapshot().Sequence);
        Assert.Equal(0, log.DurableStampRequired(log.Sequence));

        // Extent 0 (stamp 1) is the least recently used: writing extent 100 evicts it.
        var begin = log.Begin(100 * E, 1);
        Assert.Equal([0L], begin.Update!.Evicted);
        Assert.Equal(1, log.DurableStampRequired(begin.Sequence));
        Assert.Equal(0, log.DurableStampRequired(begin.Sequence - 1));

        log.MarkDurable(begin.Sequence);
        Assert.Equal(0, log.DurableStampRequired(log.Sequence));
    }

    [Fact]
    public void The_requirement_is_the_newest_write_of_any_extent_evicted_since_the_last_durable_snapshot()
    {
        var log = new ActivityLog(slots: ActivityLog.MinSlots);
        for (var extent = 0L; extent < ActivityLog.MinSlots; extent++)
        {
            log.Begin(extent * E, 1);
            log.End(extent * E, 1, stamp: 10 * (extent + 1));
        }

        // A later write to extent 0 moves it to the back; extents 1 and 2 go next, newest stamp 30.
        log.Begin(0, 1);
        log.End(0, 1, stamp: 500);
        log.Begin(100 * E, 1);
        log.Begin(101 * E, 1);
        Assert.Equal(30, log.DurableStampRequired(log.Sequence));
    }

    [Fact]
    public void A_clean_clear_requires_every_extents_writes_to_be_durable()
    {
        var log = new ActivityLog();
        log.Begin(0, 1);
        log.End(0, 1, stamp: 7);
        log.Begin(3 * E, 1);
        log.End(3 * E, 1, stamp: 9);
        log.MarkDurable(log.Snapshot().Sequence);

        var clear = log.Clear()!;
        Assert.Equal(9, log.DurableStampRequired(clear.Sequence));
    }
}

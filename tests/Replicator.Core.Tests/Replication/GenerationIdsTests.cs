using Replicator.Core.Replication;

namespace Replicator.Core.Tests.Replication;

public class GenerationIdsTests
{
    private const ulong X = 0xA1, Y = 0xB2, Z = 0xC3;

    [Fact]
    public void Degraded_writes_start_the_bitmap_from_the_current_data_set_and_take_a_new_one()
    {
        var ids = new GenerationIds(X, 0, 0x11, 0x22);
        var degraded = ids.BeginDegradedWrites(() => Y);
        Assert.Equal(new GenerationIds(Y, X, 0x11, 0x22), degraded);
    }

    [Fact]
    public void A_replica_already_recording_keeps_its_identifiers()
    {
        var degraded = new GenerationIds(Y, X, 0, 0);
        Assert.Equal(degraded, degraded.BeginDegradedWrites(() => throw new InvalidOperationException("not called")));
    }

    [Fact]
    public void Reserved_or_already_used_identifiers_from_the_source_are_skipped()
    {
        var values = new Queue<ulong>([0, GenerationIds.CreatedTogether, X, 0x11, Z]);
        var degraded = new GenerationIds(X, 0, 0x11, 0).BeginDegradedWrites(values.Dequeue);
        Assert.Equal(Z, degraded.Current);
        Assert.Throws<InvalidOperationException>(() => new GenerationIds(X, 0, 0, 0).BeginDegradedWrites(() => 0));
    }

    [Fact]
    public void An_empty_replica_cannot_write_alone()
    {
        Assert.Throws<InvalidOperationException>(() => GenerationIds.EmptyReplica.BeginDegradedWrites(() => Y));
    }

    [Fact]
    public void NewId_never_returns_a_reserved_value()
    {
        for (var i = 0; i < 1000; i++)
        {
            Assert.NotEqual(GenerationIds.Empty, GenerationIds.NewId());
            Assert.NotEqual(GenerationIds.CreatedTogether, GenerationIds.NewId());
        }
    }

    [Fact]
    public void A_node_dies_the_survivor_writes_and_the_returning_node_catches_up_by_bitmap()
    {
        var a = GenerationIds.NewVolume;
        var b = GenerationIds.NewVolume;
        a = a.BeginDegradedWrites(() => Y);

        Assert.Equal((SyncOutcome.BecomeSource, SyncKind.Bitmap), Decide(a, b));
        Assert.Equal((SyncOutcome.BecomeTarget, SyncKind.Bitmap), Decide(b, a));

        a = a.CompleteResyncAsSource();
        b = b.CompleteResyncAsTarget(a);
        Assert.Equal(a, b);
        Assert.Equal(new GenerationIds(Y, 0, GenerationIds.CreatedTogether, 0), a);
        Assert.Equal((SyncOutcome.NoSync, SyncKind.None), Decide(a, b));
    }

    [Fact]
    public void Failures_in_turn_each_resync_by_bitmap_and_history_keeps_the_last_two_data_sets()
    {
        var a = new GenerationIds(X, 0, 0, 0);
        var b = a;
        a = a.BeginDegradedWrites(() => Y);
        a = a.CompleteResyncAsSource();
        b = b.CompleteResyncAsTarget(a);

        b = b.BeginDegradedWrites(() => Z);
        Assert.Equal((SyncOutcome.BecomeTarget, SyncKind.Bitmap), Decide(a, b));
        b = b.CompleteResyncAsSource();
        a = a.CompleteResyncAsTarget(b);
        Assert.Equal(new GenerationIds(Z, 0, Y, X), a);
        Assert.Equal(a, b);
    }

    [Fact]
    public void A_resync_interrupted_before_the_source_recorded_its_end_is_finished_by_bitmap()
    {
        var a = new GenerationIds(X, 0, 0, 0).BeginDegradedWrites(() => Y);
        var b = new GenerationIds(X, 0, 0, 0).CompleteResyncAsTarget(a.CompleteResyncAsSource());
        Assert.Equal((SyncOutcome.BecomeSource, SyncKind.Bitmap), Decide(a, b));
    }

    [Fact]
    public void Both_sides_writing_alone_is_a_split_brain_until_an_admin_discards_one_side_then_a_bitmap_resync_repairs_it()
    {
        var a = new GenerationIds(X, 0, 0, 0).BeginDegradedWrites(() => Y);
        var b = new GenerationIds(X, 0, 0, 0).BeginDegradedWrites(() => Z);
        Assert.Equal((SyncOutcome.SplitBrain, SyncKind.Bitmap), Decide(a, b));
        Assert.Equal((SyncOutcome.SplitBrain, SyncKind.Bitmap), Decide(b, a));

        b = b.ResolveSplitBrainDiscardingThisSide(a);
        Assert.Equal(new GenerationIds(X, 0, Z, 0), b);
        Assert.Equal((SyncOutcome.BecomeSource, SyncKind.Bitmap), Decide(a, b));
        Assert.Equal((SyncOutcome.BecomeTarget, SyncKind.Bitmap), Decide(b, a));
        Assert.Throws<InvalidOperationException>(() => a.ResolveSplitBrainDiscardingThisSide(b));

        a = a.CompleteResyncAsSource();
        b = b.CompleteResyncAsTarget(a);
        Assert.Equal((SyncOutcome.NoSync, SyncKind.None), Decide(a, b));
    }

    [Fact]
    public void A_split_brain_found_only_in_history_is_repaired_by_a_full_sync_of_the_discarded_side()
    {
        var a = new GenerationIds(Y, 0, X, 0);
        var b = new GenerationIds(Z, 0, 0xD4, X);
        Assert.Equal((SyncOutcome.SplitBrain, SyncKind.Full), Decide(a, b));
        b = b.ResolveSplitBrainDiscardingThisSide(a);
        Assert.True(b.IsEmpty);
        Assert.Equal(Z, b.History0);
        Assert.Equal((SyncOutcome.BecomeTarget, SyncKind.Full), Decide(b, a, ReplicaDiskState.Inconsistent));
    }

    [Fact]
    public void Resolving_when_there_is_no_split_brain_is_refused()
    {
        var a = new GenerationIds(Y, X, 0, 0);
        Assert.Throws<InvalidOperationException>(() => new GenerationIds(X, 0, 0, 0).ResolveSplitBrainDiscardingThisSide(a));
        Assert.Throws<InvalidOperationException>(() => a.ResolveSplitBrainDiscardingThisSide(a));
        Assert.Throws<InvalidOperationException>(() => a.ResolveSplitBrainDiscardingThisSide(new GenerationIds(Z, 0, 0, 0)));
    }

    [Fact]
    public void An_invalidated_replica_receives_a_full_sync_and_keeps_its_old_data_set_in_history()
    {
        var a = new GenerationIds(Y, 0, X, 0);
        var b = new GenerationIds(Y, 0, X, 0).Invalidate();
        Assert.Equal(new GenerationIds(0, 0, Y, X), b);
        Assert.Equal(b, b.Invalidate());
        Assert.Equal((SyncOutcome.BecomeTarget, SyncKind.Full), Decide(b, a, ReplicaDiskState.Inconsistent));
        Assert.Throws<ArgumentException>(() => a.CompleteResyncAsTarget(GenerationIds.EmptyReplica));
    }

    [Fact]
    public void A_volume_created_while_the_peer_was_away_resyncs_by_bitmap_once_the_peer_creates_its_replica()
    {
        var a = GenerationIds.NewVolume.BeginDegradedWrites(() => Y);
        var b = GenerationIds.NewVolume;
        Assert.Equal((SyncOutcome.BecomeSource, SyncKind.Bitmap), Decide(a, b));
    }

    private static (SyncOutcome, SyncKind) Decide(GenerationIds local, GenerationIds peer, ReplicaDiskState localDisk = ReplicaDiskState.UpToDate)
    {
        var decision = SyncDecision.Decide(new ReplicaStatus(local, localDisk), new ReplicaStatus(peer, ReplicaDiskState.UpToDate), true);
        return (decision.Outcome, decision.Kind);
    }
}

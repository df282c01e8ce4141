using Replicator.Core.Metadata;

namespace Replicator.Core.Tests.Metadata;

public class PoolStateTests
{
    private static PoolState NewState()
    {
        var state = new PoolState(65536);
        state.Apply(JournalRecord.PoolFileAdded(64 * 65536));
        state.Apply(JournalRecord.VolumeCreated(1, Guid.NewGuid(), "a", 1 << 30));
        return state;
    }

    [Fact]
    public void Mapping_marks_the_extent_used_and_unmapping_frees_it()
    {
        var state = NewState();
        state.Apply(JournalRecord.UnitMapped(1, 0, 5));
        Assert.True(state.Used[5]);
        state.Apply(JournalRecord.UnitUnmapped(1, 0));
        Assert.False(state.Used[5]);
    }

    [Fact]
    public void An_extent_cannot_be_mapped_twice()
    {
        var state = NewState();
        state.Apply(JournalRecord.VolumeCreated(2, Guid.NewGuid(), "b", 1 << 30));
        state.Apply(JournalRecord.UnitMapped(1, 0, 5));
        Assert.Throws<InvalidDataException>(() => state.Apply(JournalRecord.UnitMapped(2, 0, 5)));
        Assert.Throws<InvalidDataException>(() => state.Apply(JournalRecord.UnitMapped(2, 0, 64)));
    }

    [Fact]
    public void Deleting_a_volume_frees_all_its_extents_and_its_id_is_not_reused()
    {
        var state = NewState();
        state.Apply(JournalRecord.UnitMapped(1, 0, 1));
        state.Apply(JournalRecord.UnitMapped(1, 9, 2));
        state.Apply(JournalRecord.VolumeDeleted(1));
        Assert.Equal(0, state.Used.SetCount);
        Assert.Null(state.Find("a"));
        Assert.Equal(2u, state.NextLocalId);
    }

    [Fact]
    public void Duplicate_names_are_refused()
    {
        var state = NewState();
        Assert.Throws<InvalidDataException>(() => state.Apply(JournalRecord.VolumeCreated(2, Guid.NewGuid(), "a", 4096)));
    }

    [Fact]
    public void Snapshot_round_trips_the_state()
    {
        var state = NewState();
        state.Apply(JournalRecord.UnitMapped(1, 3, 7));
        state.LastSequence = 42;
        var copy = PoolSnapshot.Deserialize(PoolSnapshot.Serialize(state, 9), out var generation);
        Assert.Equal(9ul, generation);
        Assert.Equal(42ul, copy.LastSequence);
        Assert.True(copy.Find("a")!.Map.TryGet(3, out var extent));
        Assert.Equal(7, extent);
        Assert.True(copy.Used[7]);
        Assert.Equal(state.NextLocalId, copy.NextLocalId);
    }
}

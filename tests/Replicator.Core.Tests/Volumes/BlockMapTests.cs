using Replicator.Core.Volumes;

namespace Replicator.Core.Tests.Volumes;

public class BlockMapTests
{
    [Fact]
    public void Unmapped_units_are_holes()
    {
        var map = new BlockMap();
        Assert.False(map.TryGet(0, out _));
        Assert.False(map.TryGet(long.MaxValue >> 20, out _));
        Assert.Equal(0, map.MappedCount);
    }

    [Fact]
    public void Map_then_get_returns_the_extent_including_extent_zero()
    {
        var map = new BlockMap();
        map.Map(5, 0);
        map.Map(BlockMap.PageEntries, 77);
        Assert.True(map.TryGet(5, out var e0));
        Assert.Equal(0, e0);
        Assert.True(map.TryGet(BlockMap.PageEntries, out var e1));
        Assert.Equal(77, e1);
        Assert.False(map.TryGet(4, out _));
        Assert.Equal(2, map.MappedCount);
    }

    [Fact]
    public void Mapping_a_mapped_unit_is_refused()
    {
        var map = new BlockMap();
        map.Map(3, 1);
        Assert.Throws<InvalidOperationException>(() => map.Map(3, 2));
        Assert.True(map.TryGet(3, out var e));
        Assert.Equal(1, e);
    }

    [Fact]
    public void Unmapping_the_last_unit_of_a_page_frees_the_page()
    {
        var map = new BlockMap();
        map.Map(BlockMap.PageEntries + 1, 9);
        Assert.Equal(BlockMap.PageEntries * sizeof(uint), map.PageBytes);
        Assert.True(map.TryUnmap(BlockMap.PageEntries + 1, out var extent));
        Assert.Equal(9, extent);
        Assert.Equal(0, map.PageBytes);
        Assert.False(map.TryUnmap(BlockMap.PageEntries + 1, out _));
    }

    [Fact]
    public void NextMapped_skips_absent_pages_and_respects_the_end()
    {
        var map = new BlockMap();
        var far = 1000L * BlockMap.PageEntries + 17;
        map.Map(far, 1);
        Assert.Equal(far, map.NextMapped(0, far + 1));
        Assert.Equal(-1, map.NextMapped(0, far));
        Assert.Equal(-1, map.NextMapped(far + 1, far + 100));
    }

    [Fact]
    public void Entries_are_in_unit_order()
    {
        var map = new BlockMap();
        long[] units = [3 * BlockMap.PageEntries, 2, BlockMap.PageEntries - 1, 7 * BlockMap.PageEntries + 5];
        for (var i = 0; i < units.Length; i++)
        {
            map.Map(units[i], i);
        }

        Assert.Equal(units.Order(), map.Entries().Select(e => e.Unit));
    }

    [Fact]
    public void A_16_TiB_map_with_nothing_written_holds_no_pages()
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        var map = new BlockMap();
        var units = (16L << 40) / (64 << 10);
        Assert.False(map.TryGet(units - 1, out _));
        Assert.Equal(-1, map.NextMapped(0, units));
        Assert.Equal(0, map.PageBytes);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20);
    }

    [Fact]
    public void Memory_grows_with_mapped_units_not_with_the_address_space()
    {
        var map = new BlockMap();
        var units = (16L << 40) / (64 << 10);
        for (var i = 0L; i < 100; i++)
        {
            map.Map(i * (units / 100), i);
        }

        Assert.Equal(100L * BlockMap.PageEntries * sizeof(uint), map.PageBytes);
    }
}

using Replicator.Core.Replication;

namespace Replicator.Core.Tests.Replication;

public class DirtyBitmapTests
{
    private const int K4 = 4096;

    [Fact]
    public void A_one_byte_write_marks_its_whole_region()
    {
        var bitmap = new DirtyBitmap(1 << 20);
        var changed = bitmap.Mark(5000, 1);
        Assert.Equal([new BitmapWord(0, 0b10)], changed);
        Assert.Equal(1, bitmap.DirtyRegions);
        Assert.Equal(K4, bitmap.DirtyBytes);
        Assert.True(bitmap.IsDirty(K4, 1));
        Assert.True(bitmap.IsDirty(2 * K4 - 1, 1));
        Assert.False(bitmap.IsDirty(0, K4));
        Assert.False(bitmap.IsDirty(2 * K4, K4));
    }

    [Fact]
    public void Partial_regions_at_both_ends_are_marked()
    {
        var bitmap = new DirtyBitmap(1 << 20);
        bitmap.Mark(K4 - 1, K4 + 2, null);
        Assert.Equal([(0L, 3L)], bitmap.DirtyRuns());
    }

    [Fact]
    public void A_zero_length_range_marks_nothing_even_at_the_end_of_the_volume()
    {
        var bitmap = new DirtyBitmap(1 << 20);
        Assert.Empty(bitmap.Mark(123, 0));
        Assert.Empty(bitmap.Mark(1 << 20, 0));
        Assert.False(bitmap.IsDirty(123, 0));
        Assert.Equal(0, bitmap.DirtyRegions);
        Assert.Equal(0, bitmap.AllocatedPages);
    }

    [Theory]
    [InlineData(-1L, 1L)]
    [InlineData(0L, -1L)]
    [InlineData(0L, (1L << 20) + 1)]
    [InlineData((1L << 20) - 1, 2L)]
    [InlineData(1L << 20, 1L)]
    [InlineData((1L << 20) + 1, 0L)]
    [InlineData(long.MaxValue, 1L)]
    [InlineData(1L, long.MaxValue)]
    public void Ranges_past_the_volume_are_refused_and_change_nothing(long offset, long length)
    {
        var bitmap = new DirtyBitmap(1 << 20);
        Assert.Throws<ArgumentOutOfRangeException>(() => bitmap.Mark(offset, length, null));
        Assert.Throws<ArgumentOutOfRangeException>(() => bitmap.IsDirty(offset, length));
        Assert.Equal(0, bitmap.DirtyRegions);
    }

    [Fact]
    public void Marking_dirty_regions_again_changes_no_word_so_there_is_nothing_to_persist()
    {
        var bitmap = new DirtyBitmap(1 << 30);
        Assert.NotEmpty(bitmap.Mark(0, 1 << 20));
        Assert.Empty(bitmap.Mark(4096, 8192));
        var changed = new List<BitmapWord>();
        Assert.Equal(0, bitmap.Mark(0, 1 << 20, changed));
        Assert.Empty(changed);
    }

    [Fact]
    public void Mark_reports_each_changed_word_with_its_new_value_across_words_and_pages()
    {
        var bitmap = new DirtyBitmap(1L << 40);
        bitmap.Mark(61L * K4, K4, null);
        var changed = new List<BitmapWord>();
        Assert.Equal(2, bitmap.Mark(60L * K4, 10L * K4, changed));
        Assert.Equal([new BitmapWord(0, 0xFUL << 60), new BitmapWord(1, 0b11_1111)], changed);

        var pageBits = DirtyBitmap.PageWords * 64L;
        changed.Clear();
        bitmap.Mark((pageBits - 1) * K4, 2 * K4, changed);
        Assert.Equal([new BitmapWord(DirtyBitmap.PageWords - 1, 1UL << 63), new BitmapWord(DirtyBitmap.PageWords, 1)], changed);
        Assert.Equal(2, bitmap.AllocatedPages);
    }

    [Fact]
    public void The_short_last_region_counts_its_real_length()
    {
        var bitmap = new DirtyBitmap(2 * K4 + 1808);
        Assert.Equal(3, bitmap.RegionCount);
        bitmap.Mark(2 * K4 + 1807, 1, null);
        Assert.Equal(1808, bitmap.DirtyBytes);
        Assert.Equal((2L * K4, 1808L), bitmap.RegionRange(2));
        bitmap.Mark(0, 1, null);
        Assert.Equal(K4 + 1808, bitmap.DirtyBytes);
        Assert.Throws<ArgumentOutOfRangeException>(() => bitmap.RegionRange(3));
    }

    [Fact]
    public void Clearing_reports_changed_words_and_frees_a_page_once_it_is_clean()
    {
        var bitmap = new DirtyBitmap(1L << 30);
        bitmap.Mark(0, 3 * K4, null);
        var changed = new List<BitmapWord>();
        Assert.Equal(1, bitmap.ClearRegion(1, changed));
        Assert.Equal([new BitmapWord(0, 0b101)], changed);
        Assert.Equal(0, bitmap.ClearRegion(1, changed));
        Assert.Equal(1, bitmap.AllocatedPages);
        bitmap.ClearRegions(0, 3, changed);
        Assert.Equal(0, bitmap.AllocatedPages);
        Assert.Equal(0, bitmap.DirtyRegions);
        Assert.Equal(-1, bitmap.NextDirty(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => bitmap.ClearRegions(bitmap.RegionCount - 1, 2, null));
        Assert.Equal(0, bitmap.ClearRegions(bitmap.RegionCount, 0, null));
    }

    [Fact]
    public void NextDirty_and_NextClean_find_bits_inside_words_and_skip_clean_pages()
    {
        var bitmap = new DirtyBitmap(1L << 44);
        var far = bitmap.RegionCount - 3;
        bitmap.Mark(70L * K4, K4, null);
        bitmap.Mark(far * K4, 2 * K4, null);
        Assert.Equal(70, bitmap.NextDirty(0));
        Assert.Equal(70, bitmap.NextDirty(70));
        Assert.Equal(far, bitmap.NextDirty(71));
        Assert.Equal(-1, bitmap.NextDirty(far + 2));
        Assert.Equal(71, bitmap.NextClean(70));
        Assert.Equal(0, bitmap.NextClean(0));
        Assert.Equal(far + 2, bitmap.NextClean(far));
        Assert.Equal([(70L, 1L), (far, 2L)], bitmap.DirtyRuns());
        Assert.Equal(-1, bitmap.NextDirty(bitmap.RegionCount + 5));
    }

    [Fact]
    public void A_dirty_run_to_the_very_end_of_the_volume_stops_at_the_last_region()
    {
        var bitmap = new DirtyBitmap(100 * K4 + 1);
        bitmap.Mark(90L * K4, 10L * K4 + 1, null);
        Assert.Equal([(90L, 11L)], bitmap.DirtyRuns());
        Assert.Equal(bitmap.RegionCount, bitmap.NextClean(95));
    }

    [Fact]
    public void A_clean_16_TiB_bitmap_costs_less_than_1_MiB_and_grows_only_with_dirty_pages()
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        var bitmap = new DirtyBitmap(16L << 40);
        var clean = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(clean < 1 << 20, $"a clean 16 TiB bitmap allocated {clean} bytes");
        Assert.Equal(-1, bitmap.NextDirty(0));

        bitmap.Mark((16L << 40) - 1, 1, null);
        bitmap.Mark(0, 1, null);
        var twoPages = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(twoPages < clean + 3 * DirtyBitmap.PageBytes, $"two dirty pages allocated {twoPages - clean} bytes");
        Assert.Equal(bitmap.RegionCount - 1, bitmap.NextDirty(1));
    }

    [Theory]
    [InlineData(2048)]
    [InlineData(6144)]
    [InlineData(2 << 20)]
    [InlineData(0)]
    public void Granularities_outside_4_KiB_to_1_MiB_or_not_a_power_of_two_are_refused(int granularity)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new DirtyBitmap(1 << 30, granularity));
    }

    [Theory]
    [InlineData(4096)]
    [InlineData(65536)]
    [InlineData(1 << 20)]
    public void A_granularity_counts_regions_by_its_size(int granularity)
    {
        var bitmap = new DirtyBitmap((1L << 30) + 1, granularity);
        Assert.Equal((1L << 30) / granularity + 1, bitmap.RegionCount);
        bitmap.Mark(granularity - 1, 2, null);
        Assert.Equal(2 * granularity, bitmap.DirtyBytes);
    }

    [Fact]
    public void Four_KiB_regions_resend_the_64_MiB_of_random_writes_where_64_KiB_regions_resend_ten_times_more()
    {
        var fine = new DirtyBitmap(1L << 30, 4096);
        var coarse = new DirtyBitmap(1L << 30, 65536);
        var random = new Random(7);
        for (var i = 0; i < (64 << 20) / 4096; i++)
        {
            var offset = random.NextInt64((1L << 30) / 4096) * 4096;
            fine.Mark(offset, 4096, null);
            coarse.Mark(offset, 4096, null);
        }

        Assert.InRange(fine.DirtyBytes, 60L << 20, 64L << 20);
        Assert.InRange(coarse.DirtyBytes, 600L << 20, 680L << 20);
    }

    [Fact]
    public void Growing_keeps_the_bits_and_adds_clean_regions_that_can_then_be_marked()
    {
        var bitmap = new DirtyBitmap(10 * K4 + 100);
        bitmap.Mark(10 * K4, 100, null);
        Assert.Equal(100, bitmap.DirtyBytes);
        Assert.Throws<ArgumentOutOfRangeException>(() => bitmap.Mark(10 * K4, 101, null));
        bitmap.Grow(1L << 40);
        Assert.Equal(K4, bitmap.DirtyBytes);
        Assert.True(bitmap.IsRegionDirty(10));
        Assert.False(bitmap.IsDirty(11 * K4, (1L << 40) - 11 * K4));
        bitmap.Mark((1L << 40) - 1, 1, null);
        Assert.Equal([(10L, 1L), (bitmap.RegionCount - 1, 1L)], bitmap.DirtyRuns());
        Assert.Throws<ArgumentOutOfRangeException>(() => bitmap.Grow((1L << 40) - 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => bitmap.Grow(DirtyBitmap.MaxVolumeSize + 1));
        Assert.Equal(1L << 40, bitmap.VolumeSize);
        bitmap.Grow(DirtyBitmap.MaxVolumeSize);
        Assert.Equal((1L << 40) / K4 - 1, bitmap.NextDirty(11));
    }

    [Fact]
    public void UnionWith_sets_the_other_bitmaps_bits_and_reports_only_words_that_changed()
    {
        var local = new DirtyBitmap(1L << 32);
        var peer = new DirtyBitmap(1L << 32);
        local.Mark(0, K4, null);
        peer.Mark(0, 2 * K4, null);
        peer.Mark(1L << 31, K4, null);
        var changed = new List<BitmapWord>();
        Assert.Equal(2, local.UnionWith(peer, changed));
        Assert.Equal([new BitmapWord(0, 0b11), new BitmapWord((1L << 31) / K4 / 64, 1)], changed);
        Assert.Equal([(0L, 2L), ((1L << 31) / K4, 1L)], local.DirtyRuns());
        Assert.Equal(0, local.UnionWith(peer, null));
    }

    [Fact]
    public void UnionWith_refuses_another_granularity_or_a_larger_volume()
    {
        var bitmap = new DirtyBitmap(1 << 30);
        Assert.Throws<ArgumentException>(() => bitmap.UnionWith(new DirtyBitmap(1 << 30, 65536), null));
        Assert.Throws<ArgumentException>(() => bitmap.UnionWith(new DirtyBitmap((1 << 30) + 1), null));
    }

    [Fact]
    public void MarkAll_marks_every_range_and_counts_the_new_regions()
    {
        var bitmap = new DirtyBitmap(1L << 30);
        bitmap.Mark(0, K4, null);
        var added = bitmap.MarkAll([(0, 8 * K4), (1L << 29, 1L << 20), ((1L << 30) - 1, 1)]);
        Assert.Equal(7 + 256 + 1, added);
        Assert.Equal([(0L, 8L), ((1L << 29) / K4, 256L), (bitmap.RegionCount - 1, 1L)], bitmap.DirtyRuns());
    }

    [Fact]
    public void OrWord_ignores_bits_past_the_last_region()
    {
        var bitmap = new DirtyBitmap(3 * K4);
        Assert.True(bitmap.OrWord(0, ulong.MaxValue, null));
        Assert.Equal(3, bitmap.DirtyRegions);
        Assert.Equal(0b111UL, bitmap.GetWord(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => bitmap.OrWord(1, 1, null));
    }

    [Fact]
    public void Random_marks_and_clears_agree_with_a_plain_array_of_booleans()
    {
        var random = new Random(1234);
        const int regions = DirtyBitmap.PageWords * 64 * 3 + 77;
        var bitmap = new DirtyBitmap((long)regions * K4 - 1000);
        var model = new bool[regions];
        for (var step = 0; step < 3000; step++)
        {
            var first = random.Next(regions);
            var count = random.Next(4) == 0 ? random.Next(1, 40_000) : random.Next(1, 200);
            count = Math.Min(count, regions - first);
            var changed = new List<BitmapWord>();
            if (random.Next(3) == 0)
            {
                bitmap.ClearRegions(first, count, changed);
                Array.Fill(model, false, first, count);
            }
            else
            {
                var offset = Math.Min((long)first * K4 + random.Next(K4), bitmap.VolumeSize - 1);
                var end = Math.Clamp((long)(first + count - 1) * K4 + 1 + random.Next(K4), offset + 1, bitmap.VolumeSize);
                bitmap.Mark(offset, end - offset, changed);
                Array.Fill(model, true, (int)(offset / K4), (int)((end - 1) / K4) - (int)(offset / K4) + 1);
            }

            foreach (var word in changed)
            {
                Assert.Equal(bitmap.GetWord(word.Index), word.Value);
            }

            if (step % 100 == 0)
            {
                AssertMatches(model, bitmap);
            }
        }

        AssertMatches(model, bitmap);
    }

    private static void AssertMatches(bool[] model, DirtyBitmap bitmap)
    {
        Assert.Equal(model.Count(b => b), bitmap.DirtyRegions);
        var expectedRuns = new List<(long, long)>();
        for (var i = 0; i < model.Length; i++)
        {
            if (model[i] && (i == 0 || !model[i - 1]))
            {
                var end = i;
                while (end < model.Length && model[end])
                {
                    end++;
                }

                expectedRuns.Add((i, end - i));
            }
        }

        Assert.Equal(expectedRuns, bitmap.DirtyRuns().ToList());
    }
}

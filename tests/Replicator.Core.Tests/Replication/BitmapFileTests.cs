using Replicator.Core.Replication;
using Replicator.Core.Storage;

namespace Replicator.Core.Tests.Replication;

public class BitmapFileTests
{
    private const int K4 = 4096;

    [Fact]
    public void Written_words_come_back_after_reopening()
    {
        using var dir = new TempDirectory();
        var path = dir.File("vol.bitmap");
        var expected = new DirtyBitmap(1L << 36);
        using (var file = BitmapFile.Create(PhysicalFileSystem.Instance, path, 1L << 36, K4))
        {
            foreach (var (offset, length) in new[] { (0L, 1L), (60L * K4, 10L * K4), (1L << 35, 1L << 20), ((1L << 36) - 1, 1L) })
            {
                file.WriteWords(expected.Mark(offset, length).ToArray());
            }
        }

        using var reopened = BitmapFile.Open(PhysicalFileSystem.Instance, path, out var loaded);
        AssertSame(expected, loaded);
        Assert.Equal(K4, reopened.Granularity);
        Assert.Equal(1L << 36, reopened.VolumeSize);
    }

    [Fact]
    public void Words_written_without_Flush_are_seen_by_the_next_process_through_the_page_cache()
    {
        using var dir = new TempDirectory();
        var path = dir.File("b");
        var bitmap = new DirtyBitmap(1L << 30);
        var file = BitmapFile.Create(PhysicalFileSystem.Instance, path, 1L << 30, K4);
        file.WriteWords(bitmap.Mark(12345, 1).ToArray());
        using (BitmapFile.Open(PhysicalFileSystem.Instance, path, out var seenMeanwhile))
        {
            AssertSame(bitmap, seenMeanwhile);
        }

        file.Dispose();
    }

    [Fact]
    public void A_clean_16_TiB_bitmap_takes_no_disk_space_past_the_header()
    {
        using var dir = new TempDirectory();
        var path = dir.File("big.bitmap");
        using (BitmapFile.Create(PhysicalFileSystem.Instance, path, 16L << 40, K4))
        {
        }

        Assert.Equal(BitmapFile.DataOffset + (512L << 20), new FileInfo(path).Length);
        using (var raw = PhysicalFileSystem.Instance.OpenFile(path, FileOpenMode.Open))
        {
            Assert.Equal(-1, raw.NextData(BitmapFile.DataOffset));
        }

        using var file = BitmapFile.Open(PhysicalFileSystem.Instance, path, out var bitmap);
        Assert.Equal(0, bitmap.DirtyRegions);
        Assert.Equal(16L << 40, bitmap.VolumeSize);
    }

    [Fact]
    public void A_clear_not_yet_written_reloads_as_a_stale_set_bit()
    {
        using var dir = new TempDirectory();
        var path = dir.File("b");
        var bitmap = new DirtyBitmap(1L << 30);
        using (var file = BitmapFile.Create(PhysicalFileSystem.Instance, path, 1L << 30, K4))
        {
            file.WriteWords(bitmap.Mark(0, 2 * K4).ToArray());
            bitmap.ClearRegion(0, null);
        }

        using (BitmapFile.Open(PhysicalFileSystem.Instance, path, out var loaded))
        {
            Assert.Equal([(0L, 2L)], loaded.DirtyRuns());
        }
    }

    [Fact]
    public void Writing_the_words_of_a_clear_clears_them_on_disk()
    {
        using var dir = new TempDirectory();
        var path = dir.File("b");
        var bitmap = new DirtyBitmap(1L << 30);
        using (var file = BitmapFile.Create(PhysicalFileSystem.Instance, path, 1L << 30, K4))
        {
            file.WriteWords(bitmap.Mark(0, 2 * K4).ToArray());
            var changed = new List<BitmapWord>();
            bitmap.ClearRegion(0, changed);
            file.WriteWords(changed);
            file.Flush();
        }

        using (BitmapFile.Open(PhysicalFileSystem.Instance, path, out var loaded))
        {
            Assert.Equal([(1L, 1L)], loaded.DirtyRuns());
        }
    }

    [Fact]
    public void Growing_extends_the_file_and_bits_past_the_old_end_survive_a_reopen()
    {
        using var dir = new TempDirectory();
        var path = dir.File("b");
        var bitmap = new DirtyBitmap(10 * K4 + 1);
        using (var file = BitmapFile.Create(PhysicalFileSystem.Instance, path, bitmap.VolumeSize, K4))
        {
            file.WriteWords(bitmap.Mark(10 * K4, 1).ToArray());
            Assert.Throws<ArgumentOutOfRangeException>(() => file.WriteWords(new[] { new BitmapWord(1, 1) }));
            file.Grow(1L << 40);
            bitmap.Grow(1L << 40);
            file.WriteWords(bitmap.Mark((1L << 40) - 1, 1).ToArray());
            Assert.Throws<ArgumentOutOfRangeException>(() => file.Grow(1L << 39));
        }

        using var reopened = BitmapFile.Open(PhysicalFileSystem.Instance, path, out var loaded);
        Assert.Equal(1L << 40, loaded.VolumeSize);
        AssertSame(bitmap, loaded);
    }

    [Fact]
    public void A_damaged_first_header_copy_falls_back_to_the_second()
    {
        using var dir = new TempDirectory();
        var path = dir.File("b");
        using (var file = BitmapFile.Create(PhysicalFileSystem.Instance, path, 1L << 30, 65536))
        {
            file.WriteWords(new DirtyBitmap(1L << 30, 65536).Mark(0, 1).ToArray());
        }

        Damage(path, 20);
        using (BitmapFile.Open(PhysicalFileSystem.Instance, path, out var loaded))
        {
            Assert.Equal(65536, loaded.Granularity);
            Assert.Equal(1, loaded.DirtyRegions);
        }

        Damage(path, 512 + 3);
        var error = Assert.Throws<InvalidDataException>(() => BitmapFile.Open(PhysicalFileSystem.Instance, path, out _));
        Assert.Contains("header", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_crash_between_the_two_header_copies_of_a_grow_keeps_the_newer_geometry()
    {
        using var dir = new TempDirectory();
        var path = dir.File("b");
        using (var file = BitmapFile.Create(PhysicalFileSystem.Instance, path, 1L << 30, K4))
        {
            file.Grow(1L << 31);
        }

        var grown = File.ReadAllBytes(path).AsSpan(0, 36).ToArray();
        using (var file = BitmapFile.Create(PhysicalFileSystem.Instance, dir.File("old"), 1L << 30, K4))
        {
        }

        var old = File.ReadAllBytes(dir.File("old")).AsSpan(0, 36).ToArray();
        using (var stream = new FileStream(path, FileMode.Open))
        {
            stream.Position = 512;
            stream.Write(old);
        }

        using (BitmapFile.Open(PhysicalFileSystem.Instance, path, out var loaded))
        {
            Assert.Equal(1L << 31, loaded.VolumeSize);
        }

        using (var stream = new FileStream(path, FileMode.Open))
        {
            stream.Write(old);
            stream.Position = 512;
            stream.Write(grown);
        }

        using (BitmapFile.Open(PhysicalFileSystem.Instance, path, out var loaded))
        {
            Assert.Equal(1L << 31, loaded.VolumeSize);
        }
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(20L)]
    [InlineData(600L)]
    [InlineData(BitmapFile.DataOffset)]
    [InlineData(BitmapFile.DataOffset + 8)]
    [InlineData(BitmapFile.DataOffset + (32L << 10) - 1)]
    public void A_file_cut_short_is_refused_because_its_bits_are_unknown(long length)
    {
        using var dir = new TempDirectory();
        var path = dir.File("b");
        using (var file = BitmapFile.Create(PhysicalFileSystem.Instance, path, 1L << 30, K4))
        {
            file.WriteWords(new DirtyBitmap(1L << 30).Mark(0, 1 << 20).ToArray());
        }

        using (var stream = new FileStream(path, FileMode.Open))
        {
            stream.SetLength(length);
        }

        Assert.Throws<InvalidDataException>(() => BitmapFile.Open(PhysicalFileSystem.Instance, path, out _));
    }

    [Fact]
    public void WriteAll_makes_the_file_equal_the_bitmap_and_turns_clean_pages_into_holes()
    {
        using var dir = new TempDirectory();
        var path = dir.File("b");
        var bitmap = new DirtyBitmap(1L << 40);
        using (var file = BitmapFile.Create(PhysicalFileSystem.Instance, path, bitmap.VolumeSize, K4))
        {
            file.WriteWords(bitmap.Mark(0, 1).ToArray());
            file.WriteWords(bitmap.Mark(1L << 39, 1).ToArray());
            bitmap.ClearRegion(0, null);
            bitmap.MarkAll([(1L << 38, 1L << 30), ((1L << 40) - K4, K4)]);
            file.WriteAll(bitmap);
            Assert.Throws<ArgumentException>(() => file.WriteAll(new DirtyBitmap(1L << 39)));
        }

        using (var raw = PhysicalFileSystem.Instance.OpenFile(path, FileOpenMode.Open))
        {
            var firstData = raw.NextData(BitmapFile.DataOffset);
            Assert.Equal(BitmapFile.DataOffset + (1L << 38) / K4 / 8, firstData);
        }

        using var reopened = BitmapFile.Open(PhysicalFileSystem.Instance, path, out var loaded);
        AssertSame(bitmap, loaded);
    }

    [Fact]
    public void Creating_over_an_existing_file_is_refused()
    {
        using var dir = new TempDirectory();
        var path = dir.File("b");
        using (BitmapFile.Create(PhysicalFileSystem.Instance, path, 1 << 30, K4))
        {
        }

        Assert.Throws<IOException>(() => BitmapFile.Create(PhysicalFileSystem.Instance, path, 1 << 30, K4));
    }

    private static void Damage(string path, long offset)
    {
        using var stream = new FileStream(path, FileMode.Open);
        stream.Position = offset;
        var b = stream.ReadByte();
        stream.Position = offset;
        stream.WriteByte((byte)(b ^ 0x40));
    }

    private static void AssertSame(DirtyBitmap expected, DirtyBitmap actual)
    {
        Assert.Equal(expected.VolumeSize, actual.VolumeSize);
        Assert.Equal(expected.DirtyRegions, actual.DirtyRegions);
        Assert.Equal(expected.DirtyRuns(), actual.DirtyRuns());
    }
}

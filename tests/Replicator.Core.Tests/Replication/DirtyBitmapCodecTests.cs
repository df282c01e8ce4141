using System.Buffers.Binary;
using Replicator.Core.Replication;

namespace Replicator.Core.Tests.Replication;

public class DirtyBitmapCodecTests
{
    private const int K4 = 4096;
    private const long Size = 3L * DirtyBitmap.PageWords * 64 * K4 + 5 * K4 + 100;

    public static TheoryData<string> Shapes => new() { "clean", "one-byte", "large-writes", "random-sparse", "alternating", "full", "last-region" };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Every_shape_round_trips_through_small_and_large_chunks(string shape)
    {
        var original = Build(shape);
        foreach (var chunkBytes in new[] { DirtyBitmapCodec.MinChunkBytes, 64 * 1024, 1 << 20 })
        {
            var copy = new DirtyBitmap(original.VolumeSize, original.Granularity);
            foreach (var chunk in DirtyBitmapCodec.EncodeAll(original, chunkBytes))
            {
                Assert.True(chunk.Length <= chunkBytes);
                DirtyBitmapCodec.DecodeInto(chunk, copy, null);
            }

            AssertSame(original, copy);
        }
    }

    [Fact]
    public void A_few_large_writes_on_a_16_TiB_volume_take_a_few_bytes()
    {
        var bitmap = new DirtyBitmap(16L << 40);
        bitmap.Mark(0, 32 << 20, null);
        bitmap.Mark(8L << 40, 1 << 20, null);
        bitmap.Mark((16L << 40) - 1, 1, null);
        var chunks = DirtyBitmapCodec.EncodeAll(bitmap, 1 << 20).ToList();
        Assert.Single(chunks);
        Assert.True(chunks[0].Length < 64, $"{chunks[0].Length} bytes");
    }

    [Fact]
    public void A_worst_case_page_is_sent_raw_so_nothing_costs_much_more_than_the_dense_bitmap()
    {
        var bitmap = Build("alternating");
        var total = DirtyBitmapCodec.EncodeAll(bitmap, 1 << 20).Sum(c => c.Length);
        var dense = bitmap.PageCount * DirtyBitmap.PageBytes;
        Assert.True(total <= dense + bitmap.PageCount * 16 + 16, $"{total} bytes for a dense size of {dense}");
    }

    [Fact]
    public void Decoding_adds_to_the_bits_already_there_and_reports_the_changed_words()
    {
        var local = new DirtyBitmap(Size);
        local.Mark(0, K4, null);
        var peer = new DirtyBitmap(Size);
        peer.Mark(K4, K4, null);
        peer.Mark(Size - 1, 1, null);
        var changed = new List<BitmapWord>();
        var chunk = DirtyBitmapCodec.EncodeAll(peer, 1 << 20).Single();
        Assert.Equal(2, DirtyBitmapCodec.DecodeInto(chunk, local, changed));
        Assert.Equal([new BitmapWord(0, 0b11), new BitmapWord(local.WordCount - 1, local.GetWord(local.WordCount - 1))], changed);
        Assert.Equal(0, DirtyBitmapCodec.DecodeInto(chunk, local, null));
    }

    [Fact]
    public void Decoding_notes_only_the_regions_it_newly_marks()
    {
        var local = new DirtyBitmap(Size);
        local.Mark(0, 2 * K4, null);
        var peer = new DirtyBitmap(Size);
        peer.Mark(K4, 2 * K4, null);
        peer.Mark(Size - 1, 1, null);
        var newlyDirty = new DirtyBitmap(Size);

        DirtyBitmapCodec.DecodeInto(DirtyBitmapCodec.EncodeAll(peer, 1 << 20).Single(), local, null, newlyDirty);

        Assert.Equal([(2L, 1L), (local.RegionCount - 1, 1L)], newlyDirty.DirtyRuns().ToList());
        Assert.Equal([(0L, 3L), (local.RegionCount - 1, 1L)], local.DirtyRuns().ToList());
    }

    [Fact]
    public void A_buffer_too_small_for_one_page_is_refused()
    {
        Assert.Throws<ArgumentException>(() => DirtyBitmapCodec.Encode(new DirtyBitmap(Size), 0, new byte[DirtyBitmapCodec.MinChunkBytes - 1], out _));
    }

    [Fact]
    public void Every_cut_inside_a_record_is_refused_and_leaves_the_bitmap_unchanged()
    {
        var chunk = DirtyBitmapCodec.EncodeAll(Build("random-sparse"), 1 << 20).Single();
        var boundaries = RecordBoundaries(Build("random-sparse"));
        for (var cut = 0; cut < chunk.Length; cut++)
        {
            var target = new DirtyBitmap(Size);
            target.Mark(0, 1, null);
            if (boundaries.Contains(cut))
            {
                DirtyBitmapCodec.DecodeInto(chunk.AsSpan(0, cut), target, null);
                continue;
            }

            Assert.Throws<InvalidDataException>(() => DirtyBitmapCodec.DecodeInto(chunk.AsSpan(0, cut), target, null));
            Assert.Equal([(0L, 1L)], target.DirtyRuns());
        }
    }

    public static TheoryData<string> Malformed => new(MalformedChunks.Keys);

    [Theory]
    [MemberData(nameof(Malformed))]
    public void A_malformed_chunk_is_refused_with_InvalidDataException(string name)
    {
        var target = new DirtyBitmap(Size);
        var error = Assert.Throws<InvalidDataException>(() => DirtyBitmapCodec.DecodeInto(MalformedChunks[name], target, null));
        Assert.False(string.IsNullOrEmpty(error.Message));
        Assert.Equal(0, target.DirtyRegions);
    }

    private static readonly Dictionary<string, byte[]> MalformedChunks = new()
    {
        ["shorter than the header"] = [1, 12, 0, 0],
        ["unknown version"] = Chunk(version: 2, body: [0, 1, 1, 0, 1]),
        ["other granularity"] = Chunk(shift: 16, body: [0, 1, 1, 0, 1]),
        ["other volume size"] = Chunk(size: Size + 1, body: [0, 1, 1, 0, 1]),
        ["page past the volume"] = Chunk(body: [4, 1, 1, 0, 1]),
        ["second page past the volume"] = Chunk(body: [3, 1, 1, 0, 1, 0, 1, 1, 0, 1]),
        ["unknown record kind"] = Chunk(body: [0, 3, 1, 0, 1]),
        ["zero runs"] = Chunk(body: [0, 1, 0]),
        ["zero-length run"] = Chunk(body: [0, 1, 1, 0, 0]),
        ["run starting past the page"] = Chunk(body: [0, 1, 1, 0x80, 0x80, 0x02, 1]),
        ["run ending past the page"] = Chunk(body: [0, 1, 1, 0xFF, 0xFF, 0x01, 2]),
        ["second run overlapping the page end"] = Chunk(body: [0, 1, 2, 0, 1, 0xFE, 0xFF, 0x01, 2]),
        ["region past the last region"] = Chunk(body: [3, 1, 1, 6, 1]),
        ["raw page with nothing set"] = Chunk(body: [0, 2, .. new byte[DirtyBitmap.PageBytes]]),
        ["raw page cut short"] = Chunk(body: [0, 2, 1, 0, 0]),
        ["varint longer than 10 bytes"] = Chunk(body: [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
        ["varint overflowing 64 bits"] = Chunk(body: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02]),
        ["record cut after its gap"] = Chunk(body: [0]),
    };

    private static byte[] Chunk(byte[] body, byte version = 1, byte shift = 12, long size = Size)
    {
        var chunk = new byte[10 + body.Length];
        chunk[0] = version;
        chunk[1] = shift;
        BinaryPrimitives.WriteInt64LittleEndian(chunk.AsSpan(2), size);
        body.CopyTo(chunk, 10);
        return chunk;
    }

    private static DirtyBitmap Build(string shape)
    {
        var bitmap = new DirtyBitmap(Size);
        var random = new Random(shape.Length);
        switch (shape)
        {
            case "one-byte":
                bitmap.Mark(12345, 1, null);
                break;
            case "large-writes":
                bitmap.Mark(0, 32 << 20, null);
                bitmap.Mark(200L << 20, 100L << 20, null);
                break;
            case "random-sparse":
                for (var i = 0; i < 500; i++)
                {
                    bitmap.Mark(random.NextInt64(Size - 64 * K4), random.Next(1, 64 * K4), null);
                }

                break;
            case "alternating":
                for (long region = 0; region < bitmap.RegionCount; region += 2)
                {
                    bitmap.Mark(region * K4, 1, null);
                }

                break;
            case "full":
                bitmap.Mark(0, Size, null);
                break;
            case "last-region":
                bitmap.Mark(Size - 1, 1, null);
                break;
        }

        return bitmap;
    }

    private static HashSet<int> RecordBoundaries(DirtyBitmap bitmap)
    {
        var boundaries = new HashSet<int>();
        var buffer = new byte[1 << 20];
        for (var pages = 0; pages <= bitmap.AllocatedPages; pages++)
        {
            var limited = new DirtyBitmap(bitmap.VolumeSize);
            foreach (var page in bitmap.AllocatedPageIndices().Take(pages))
            {
                var words = bitmap.PageContents(page);
                for (var i = 0; i < words.Length; i++)
                {
                    if (words[i] != 0)
                    {
                        limited.OrWord((page << DirtyBitmap.PageShift) + i, words[i], null);
                    }
                }
            }

            boundaries.Add(DirtyBitmapCodec.Encode(limited, 0, buffer, out _));
        }

        return boundaries;
    }

    private static void AssertSame(DirtyBitmap expected, DirtyBitmap actual)
    {
        Assert.Equal(expected.DirtyRegions, actual.DirtyRegions);
        Assert.Equal(expected.AllocatedPageIndices(), actual.AllocatedPageIndices());
        foreach (var page in expected.AllocatedPageIndices())
        {
            Assert.True(expected.PageContents(page).SequenceEqual(actual.PageContents(page)), $"page {page} differs");
        }
    }
}

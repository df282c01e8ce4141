using System.Buffers.Binary;
using System.Numerics;

namespace Replicator.Core.Replication;

/// <summary>
/// The compact form of a <see cref="DirtyBitmap"/> for the network, cut into chunks that each fit
/// one peer message payload. Each chunk stands alone: the receiver ORs it into its own bitmap
/// (<see cref="DecodeInto"/>), which is the union a bitmap resync needs.
/// </summary>
/// <remarks>
/// <code>
/// u8 version (1)   u8 granularity shift   u64 volume size
/// { varint page gap   u8 kind   body }*            to the end of the chunk
///   kind 1, runs:  varint n  { varint clean bits skipped   varint dirty bits }×n   (from the page's first bit)
///   kind 2, raw:   512 × u64 words
/// </code>
/// Little-endian; varints are unsigned LEB128. Only pages with a dirty bit appear, in ascending
/// order; the page gap is the page index minus one more than the previous page's (the first
/// record's gap is its index). Each page is encoded as runs or raw, whichever is shorter, so a
/// bitmap never takes much more than its dense size (1 byte and a varint per page), and a few
/// large writes over a huge volume take a few bytes. The peer frame's checksum guards the bytes;
/// this codec checks the structure and refuses anything out of place.
/// </remarks>
internal static class DirtyBitmapCodec
{
    /// <summary>The smallest chunk buffer: the header and one raw page with its longest gap.</summary>
    public const int MinChunkBytes = HeaderBytes + MaxVarintBytes + 1 + DirtyBitmap.PageBytes;
    private const byte Version = 1;
    private const int HeaderBytes = 2 + sizeof(long);
    private const int MaxVarintBytes = 10;
    private const byte KindRuns = 1;
    private const byte KindRaw = 2;
    private const int PageBits = DirtyBitmap.PageWords * 64;

    /// <summary>
    /// Encodes the dirty pages from <paramref name="fromPage"/> on into <paramref name="destination"/>,
    /// as many as fit. <paramref name="nextPage"/> is where the next chunk starts, or -1 when this
    /// chunk holds the last dirty page (a clean bitmap gives one chunk with no pages).
    /// </summary>
    public static int Encode(DirtyBitmap bitmap, long fromPage, Span<byte> destination, out long nextPage)
    {
        ArgumentNullException.ThrowIfNull(bitmap);
        if (destination.Length < MinChunkBytes)
        {
            throw new ArgumentException($"a bitmap chunk needs at least {MinChunkBytes} bytes", nameof(destination));
        }

        destination[0] = Version;
        destination[1] = (byte)bitmap.GranularityShift;
        BinaryPrimitives.WriteInt64LittleEndian(destination[2..], bitmap.VolumeSize);
        var position = HeaderBytes;
        var previous = -1L;
        for (var page = bitmap.NextAllocatedPage(fromPage); page >= 0; page = bitmap.NextAllocatedPage(page + 1))
        {
            var words = bitmap.PageContents(page);
            var runsSize = RunsSize(words, out var runCount);
            var gap = (ulong)(page - previous - 1);
            var recordSize = VarintSize(gap) + 1 + Math.Min(runsSize, DirtyBitmap.PageBytes);
            if (position + recordSize > destination.Length)
            {
                nextPage = page;
                return position;
            }

            position += WriteVarint(destination[position..], gap);
            if (runsSize < DirtyBitmap.PageBytes)
            {
                destination[position++] = KindRuns;
                position += WriteRuns(words, runCount, destination[position..]);
            }
            else
            {
                destination[position++] = KindRaw;
                foreach (var word in words)
                {
                    BinaryPrimitives.WriteUInt64LittleEndian(destination[position..], word);
                    position += sizeof(ulong);
                }
            }

            previous = page;
        }

        nextPage = -1;
        return position;
    }

    /// <summary>Every chunk of the bitmap, each at most <paramref name="chunkBytes"/> long.</summary>
    public static IEnumerable<byte[]> EncodeAll(DirtyBitmap bitmap, int chunkBytes)
    {
        var buffer = new byte[chunkBytes];
        var page = 0L;
        while (page >= 0)
        {
            var length = Encode(bitmap, page, buffer, out page);
            yield return buffer.AsSpan(0, length).ToArray();
        }
    }

    /// <summary>
    /// ORs the regions that <paramref name="chunk"/> marks into <paramref name="bitmap"/>, appending
    /// the changed words to <paramref name="changed"/> and the regions it newly marks to <paramref name="newlyDirty"/>
    /// (when given). Returns the number of regions newly dirty.
    /// </summary>
    /// <exception cref="InvalidDataException">The chunk is malformed, or describes another geometry; the bitmap is then unchanged.</exception>
    public static long DecodeInto(ReadOnlySpan<byte> chunk, DirtyBitmap bitmap, List<BitmapWord>? changed, DirtyBitmap? newlyDirty = null)
    {
        ArgumentNullException.ThrowIfNull(bitmap);
        var staged = Parse(chunk, bitmap);
        var before = bitmap.DirtyRegions;
        foreach (var (index, value) in staged)
        {
            bitmap.OrWord(index, value, changed, newlyDirty);
        }

        return bitmap.DirtyRegions - before;
    }

    private static List<(long Index, ulong Value)> Parse(ReadOnlySpan<byte> chunk, DirtyBitmap bitmap)
    {
        if (chunk.Length < HeaderBytes)
        {
            throw new InvalidDataException($"a bitmap chunk of {chunk.Length} bytes is shorter than its header");
        }

        if (chunk[0] != Version)
        {
            throw new InvalidDataException($"bitmap chunk version {chunk[0]} is not supported (this build reads {Version})");
        }

        var size = BinaryPrimitives.ReadInt64LittleEndian(chunk[2..]);
        if (chunk[1] != bitmap.GranularityShift || size != bitmap.VolumeSize)
        {
            throw new InvalidDataException(
                $"the bitmap chunk describes {1L << Math.Min((int)chunk[1], 62)}-byte regions over {size} bytes; this volume has {bitmap.Granularity}-byte regions over {bitmap.VolumeSize} bytes");
        }

        var words = new List<(long, ulong)>();
        var reader = new ChunkReader(chunk[HeaderBytes..]);
        var page = -1L;
        while (!reader.AtEnd)
        {
            var gap = reader.ReadVarint();
            if (gap >= (ulong)(bitmap.PageCount - page - 1))
            {
                throw new InvalidDataException($"bitmap chunk names a page past the volume's {bitmap.PageCount} pages");
            }

            page += (long)gap + 1;
            var firstWord = words.Count;
            switch (reader.ReadByte())
            {
                case KindRuns:
                    ParseRuns(ref reader, page, words);
                    break;
                case KindRaw:
                    for (var i = 0; i < DirtyBitmap.PageWords; i++)
                    {
                        var value = reader.ReadUInt64();
                        if (value != 0)
                        {
                            words.Add(((page << DirtyBitmap.PageShift) + i, value));
                        }
                    }

                    break;
                case var kind:
                    throw new InvalidDataException($"bitmap chunk page record of unknown kind {kind}");
            }

            if (words.Count == firstWord)
            {
                throw new InvalidDataException($"bitmap chunk holds an empty record for page {page}");
            }
        }

        if (words.Count > 0)
        {
            CheckLastRegion(words[^1], bitmap);
        }

        return words;
    }

    private static void ParseRuns(ref ChunkReader reader, long page, List<(long Index, ulong Value)> words)
    {
        var count = reader.ReadVarint();
        if (count == 0 || count > PageBits / 2 + 1)
        {
            throw new InvalidDataException($"bitmap chunk page {page} has {count} runs");
        }

        var bit = 0UL;
        for (var r = 0UL; r < count; r++)
        {
            var skip = reader.ReadVarint();
            var length = reader.ReadVarint();
            if (skip >= PageBits - bit || length == 0 || length > PageBits - bit - skip)
            {
                throw new InvalidDataException($"bitmap chunk page {page} has a run outside the page");
            }

            bit += skip;

            for (var end = bit + length; bit < end;)
            {
                var inWord = (int)Math.Min(64 - (bit & 63), end - bit);
                var mask = (inWord == 64 ? ulong.MaxValue : (1UL << inWord) - 1) << (int)(bit & 63);
                var index = (page << DirtyBitmap.PageShift) + (long)(bit >> 6);
                if (words.Count > 0 && words[^1].Index == index)
                {
                    words[^1] = (index, words[^1].Value | mask);
                }
                else
                {
                    words.Add((index, mask));
                }

                bit += (ulong)inWord;
            }
        }
    }

    private static void CheckLastRegion((long Index, ulong Value) last, DirtyBitmap bitmap)
    {
        var lastRegion = (last.Index << 6) + 63 - BitOperations.LeadingZeroCount(last.Value);
        if (lastRegion >= bitmap.RegionCount)
        {
            throw new InvalidDataException($"bitmap chunk marks region {lastRegion}, past the volume's {bitmap.RegionCount} regions");
        }
    }

    private static int RunsSize(ReadOnlySpan<ulong> words, out int runCount)
    {
        var size = 0;
        runCount = 0;
        var previousEnd = 0;
        foreach (var (start, length) in PageRuns(words))
        {
            size += VarintSize((ulong)(start - previousEnd)) + VarintSize((ulong)length);
            previousEnd = start + length;
            runCount++;
            if (size >= DirtyBitmap.PageBytes)
            {
                return size;
            }
        }

        return size + VarintSize((ulong)runCount);
    }

    private static int WriteRuns(ReadOnlySpan<ulong> words, int runCount, Span<byte> destination)
    {
        var position = WriteVarint(destination, (ulong)runCount);
        var previousEnd = 0;
        foreach (var (start, length) in PageRuns(words))
        {
            position += WriteVarint(destination[position..], (ulong)(start - previousEnd));
            position += WriteVarint(destination[position..], (ulong)length);
            previousEnd = start + length;
        }

        return position;
    }

    private static PageRunEnumerator PageRuns(ReadOnlySpan<ulong> words) => new(words);

    private static int VarintSize(ulong value) => Math.Max(1, (64 - BitOperations.LeadingZeroCount(value) + 6) / 7);

    private static int WriteVarint(Span<byte> destination, ulong value)
    {
        var i = 0;
        while (value >= 0x80)
        {
            destination[i++] = (byte)(value | 0x80);
            value >>= 7;
        }

        destination[i++] = (byte)value;
        return i;
    }

    /// <summary>Runs of set bits in one page as (first bit, length).</summary>
    private ref struct PageRunEnumerator(ReadOnlySpan<ulong> words)
    {
        private readonly ReadOnlySpan<ulong> _words = words;
        private int _bit;

        public (int Start, int Length) Current { get; private set; }

        public readonly PageRunEnumerator GetEnumerator() => this;

        public bool MoveNext()
        {
            var start = Find(_bit, set: true);
            if (start >= PageBits)
            {
                return false;
            }

            _bit = Find(start, set: false);
            Current = (start, _bit - start);
            return true;
        }

        private readonly int Find(int from, bool set)
        {
            var w = from >> 6;
            if (w >= _words.Length)
            {
                return PageBits;
            }

            var value = (set ? _words[w] : ~_words[w]) & (ulong.MaxValue << (from & 63));
            while (value == 0)
            {
                if (++w == _words.Length)
                {
                    return PageBits;
                }

                value = set ? _words[w] : ~_words[w];
            }

            return (w << 6) + BitOperations.TrailingZeroCount(value);
        }
    }

    private ref struct ChunkReader(ReadOnlySpan<byte> bytes)
    {
        private readonly ReadOnlySpan<byte> _bytes = bytes;
        private int _position;

        public readonly bool AtEnd => _position == _bytes.Length;

        public byte ReadByte() =>
            _position < _bytes.Length ? _bytes[_position++] : throw Truncated();

        public ulong ReadUInt64()
        {
            if (_bytes.Length - _position < sizeof(ulong))
            {
                throw Truncated();
            }

            var value = BinaryPrimitives.ReadUInt64LittleEndian(_bytes[_position..]);
            _position += sizeof(ulong);
            return value;
        }

        public ulong ReadVarint()
        {
            var value = 0UL;
            for (var shift = 0; shift < 64; shift += 7)
            {
                var b = ReadByte();
                if (shift == 63 && b > 1)
                {
                    throw new InvalidDataException("bitmap chunk varint overflows 64 bits");
                }

                value |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80)
                {
                    return value;
                }
            }

            throw new InvalidDataException("bitmap chunk varint is longer than 10 bytes");
        }

        private static InvalidDataException Truncated() => new("bitmap chunk ends in the middle of a page record");
    }
}

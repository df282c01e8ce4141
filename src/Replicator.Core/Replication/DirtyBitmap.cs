using System.Numerics;

namespace Replicator.Core.Replication;

/// <summary>
/// The write-intent bitmap of one volume towards its peer: one bit per region of
/// <see cref="Granularity"/> bytes, set while that region may differ on the peer. Pure data, no I/O:
/// every change returns the words it changed, and the caller persists exactly those
/// (<see cref="BitmapFile.WriteWords"/>) before it acknowledges the write.
/// </summary>
/// <remarks>
/// <para>
/// <b>Granularity.</b> The default is 4 KiB, the block size of nearly every file system and
/// database a hypervisor guest runs, and DRBD's choice too. A coarser region turns every small
/// random write into a resend of the whole region: 64 MiB of random 4 KiB writes spread over a
/// 1 GiB volume dirty about 16,000 of its 262,144 blocks; at 4 KiB the resync sends those 64 MiB,
/// at 64 KiB it sends about 660 MiB (most 64 KiB regions of that volume hold at least one write).
/// The price is memory and bitmap I/O, both of which grow with what is dirty, not with the volume
/// (see below): a fully dirty 1 TiB volume costs 32 MiB of bitmap.
/// </para>
/// <para>
/// <b>Memory.</b> Words live in pages of <see cref="PageWords"/> words (4 KiB, 128 MiB of volume at
/// 4 KiB granularity) that exist only while a bit in them is set, plus one summary bit per page, so
/// a clean 16 TiB volume costs 16 KiB and <see cref="NextDirty"/> skips clean pages 64 at a time.
/// </para>
/// <para>
/// <b>Boundaries.</b> A range marks every region it touches, including partial regions at both
/// ends (a 1-byte write marks its whole region); the last region of a volume whose size is not a
/// multiple of the granularity is shorter than the others. A zero-length range marks nothing.
/// A range that ends past <see cref="VolumeSize"/> is refused.
/// </para>
/// <para>Not thread-safe: the volume serializes calls under the lock that orders its writes.</para>
/// </remarks>
internal sealed partial class DirtyBitmap
{
    public const int MinGranularity = 4 * 1024;
    public const int MaxGranularity = 1024 * 1024;
    public const int DefaultGranularity = 4 * 1024;

    /// <summary>1 PiB: the page summary of such a volume at 4 KiB granularity is 1 MiB.</summary>
    public const long MaxVolumeSize = 1L << 50;
    public const int PageShift = 9;
    public const int PageWords = 1 << PageShift;
    public const int PageBytes = PageWords * sizeof(ulong);
    private const int PageMask = PageWords - 1;

    private readonly Dictionary<long, Page> _pages = [];
    private readonly List<BitmapWord> _scratch = [];
    private ulong[] _pagePresent;

    public DirtyBitmap(long volumeSize, int granularity = DefaultGranularity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(volumeSize);
        CheckGranularity(granularity);
        Granularity = granularity;
        GranularityShift = BitOperations.Log2((uint)granularity);
        _pagePresent = [];
        Resize(volumeSize);
    }

    /// <summary>Bytes of volume per bit.</summary>
    public int Granularity { get; }

    public int GranularityShift { get; }

    public long VolumeSize { get; private set; }

    /// <summary>Regions in the volume: the size divided by the granularity, rounded up.</summary>
    public long RegionCount { get; private set; }

    public long WordCount => (RegionCount + 63) >> 6;

    public long PageCount => (WordCount + PageMask) >> PageShift;

    /// <summary>Regions whose bit is set.</summary>
    public long DirtyRegions { get; private set; }

    /// <summary>Bytes of volume in dirty regions (what a resync sends), counting the short last region as its real length.</summary>
    public long DirtyBytes
    {
        get
        {
            var bytes = DirtyRegions << GranularityShift;
            return RegionCount > 0 && IsRegionDirty(RegionCount - 1)
                ? bytes - ((RegionCount << GranularityShift) - VolumeSize)
                : bytes;
        }
    }

    /// <summary>Pages currently held in memory.</summary>
    public int AllocatedPages => _pages.Count;

    public static void CheckGranularity(int granularity)
    {
        if (granularity is < MinGranularity or > MaxGranularity || !BitOperations.IsPow2(granularity))
        {
            throw new ArgumentOutOfRangeException(nameof(granularity), granularity,
                $"the bitmap granularity must be a power of two from {MinGranularity} to {MaxGranularity} bytes");
        }
    }

    /// <summary>Marks every region that [<paramref name="offset"/>, +<paramref name="length"/>) touches; appends each changed word to <paramref name="changed"/>.</summary>
    /// <returns>The number of words that changed: 0 when every region was already dirty, and then there is nothing to persist.</returns>
    public int Mark(long offset, long length, List<BitmapWord>? changed)
    {
        CheckRange(offset, length);
        return length == 0 ? 0 : SetRegions(offset >> GranularityShift, (offset + length - 1) >> GranularityShift, changed);
    }

    /// <summary>Marks the range and returns the words that changed (an empty list, not allocated, when none did).</summary>
    public IReadOnlyList<BitmapWord> Mark(long offset, long length)
    {
        _scratch.Clear();
        return Mark(offset, length, _scratch) == 0 ? [] : _scratch.ToArray();
    }

    /// <summary>Marks every range, for a full sync (for example every allocated range of the volume). Returns the regions newly marked.</summary>
    /// <remarks>Collects no changed words: after a bulk change the caller rewrites the whole file with <see cref="BitmapFile.WriteAll"/>.</remarks>
    public long MarkAll(IEnumerable<(long Offset, long Length)> ranges)
    {
        var before = DirtyRegions;
        foreach (var (offset, length) in ranges)
        {
            Mark(offset, length, null);
        }

        return DirtyRegions - before;
    }

    /// <summary>Clears <paramref name="count"/> regions from <paramref name="firstRegion"/>; appends each changed word to <paramref name="changed"/>.</summary>
    /// <remarks>
    /// The caller may persist clears lazily: a bit left set on disk costs a resend of its region, never data.
    /// </remarks>
    public int ClearRegions(long firstRegion, long count, List<BitmapWord>? changed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstRegion);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (firstRegion > RegionCount - count)
        {
            throw new ArgumentOutOfRangeException(nameof(count), $"regions {firstRegion}+{count} are past the bitmap's {RegionCount} regions");
        }

        return count == 0 ? 0 : ClearRegionRange(firstRegion, firstRegion + count - 1, changed);
    }

    public int ClearRegion(long region, List<BitmapWord>? changed) => ClearRegions(region, 1, changed);

    /// <summary>
    /// Sets every bit set in <paramref name="other"/> (the peer's bitmap, or the activity log's extents); bits that were
    /// clean here are also set in <paramref name="newlyDirty"/>, when given.
    /// </summary>
    public int UnionWith(DirtyBitmap other, List<BitmapWord>? changed, DirtyBitmap? newlyDirty = null)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.Granularity != Granularity)
        {
            throw new ArgumentException($"cannot merge a bitmap of {other.Granularity}-byte regions into one of {Granularity}-byte regions", nameof(other));
        }

        if (other.RegionCount > RegionCount)
        {
            throw new ArgumentException($"the other bitmap covers {other.RegionCount} regions, this one {RegionCount}", nameof(other));
        }

        var words = 0;
        foreach (var pageIndex in other.AllocatedPageIndices())
        {
            var source = other._pages[pageIndex].Words;
            for (var i = 0; i < PageWords; i++)
            {
                if (source[i] != 0)
                {
                    words += OrWord((pageIndex << PageShift) + i, source[i], changed, newlyDirty) ? 1 : 0;
                }
            }
        }

        return words;
    }

    /// <summary>
    /// Sets the bits of <paramref name="value"/> in word <paramref name="index"/>, ignoring bits past the last region.
    /// Bits that were clean here are also set in <paramref name="newlyDirty"/> (a bitmap of the same geometry), when given.
    /// </summary>
    /// <returns>Whether the word changed (and was appended to <paramref name="changed"/>).</returns>
    public bool OrWord(long index, ulong value, List<BitmapWord>? changed, DirtyBitmap? newlyDirty = null)
    {
        if ((ulong)index >= (ulong)WordCount)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"the bitmap has {WordCount} words");
        }

        if (index == WordCount - 1 && (RegionCount & 63) != 0)
        {
            value &= (1UL << (int)(RegionCount & 63)) - 1;
        }

        if (value == 0)
        {
            return false;
        }

        if (newlyDirty is not null && (value & ~GetWord(index)) is var fresh and not 0)
        {
            newlyDirty.OrWord(index, fresh, null);
        }

        return SetMask(GetOrAddPage(index >> PageShift), index, value, changed);
    }

    public ulong GetWord(long index) =>
        _pages.TryGetValue(index >> PageShift, out var page) ? page.Words[index & PageMask] : 0;

    /// <summary>Makes the volume larger; the new regions are clean. A volume never shrinks.</summary>
    public void Grow(long volumeSize)
    {
        if (volumeSize < VolumeSize)
        {
            throw new ArgumentOutOfRangeException(nameof(volumeSize), volumeSize, $"a volume cannot shrink below {VolumeSize} bytes");
        }

        Resize(volumeSize);
    }

    /// <summary>The byte range of <paramref name="region"/>; the last region is cut at the volume's end.</summary>
    public (long Offset, long Length) RegionRange(long region)
    {
        if ((ulong)region >= (ulong)RegionCount)
        {
            throw new ArgumentOutOfRangeException(nameof(region), region, $"the bitmap has {RegionCount} regions");
        }

        var offset = region << GranularityShift;
        return (offset, Math.Min(Granularity, VolumeSize - offset));
    }

    private void Resize(long volumeSize)
    {
        if (volumeSize > MaxVolumeSize)
        {
            throw new ArgumentOutOfRangeException(nameof(volumeSize), volumeSize, $"a bitmap covers volumes of at most {MaxVolumeSize} bytes");
        }

        var regions = (long)(((ulong)volumeSize + (ulong)Granularity - 1) >> GranularityShift);
        var pages = (((regions + 63) >> 6) + PageMask) >> PageShift;
        Array.Resize(ref _pagePresent, (int)((pages + 63) >> 6));
        VolumeSize = volumeSize;
        RegionCount = regions;
    }

    private void CheckRange(long offset, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (offset > VolumeSize - length)
        {
            throw new ArgumentOutOfRangeException(nameof(length), $"range {offset}+{length} ends past the volume's {VolumeSize} bytes");
        }
    }

    private int SetRegions(long first, long last, List<BitmapWord>? changed)
    {
        var words = 0;
        Page? page = null;
        for (var w = first >> 6; w <= last >> 6; w++)
        {
            if (page is null || (w & PageMask) == 0)
            {
                page = GetOrAddPage(w >> PageShift);
            }

            words += SetMask(page, w, WordMask(w, first, last), changed) ? 1 : 0;
        }

        return words;
    }

    private int ClearRegionRange(long first, long last, List<BitmapWord>? changed)
    {
        var words = 0;
        var w = first >> 6;
        while (w <= last >> 6)
        {
            var pageIndex = w >> PageShift;
            var pageEnd = Math.Min((pageIndex + 1) << PageShift, (last >> 6) + 1);
            if (!_pages.TryGetValue(pageIndex, out var page))
            {
                w = pageEnd;
                continue;
            }

            for (; w < pageEnd; w++)
            {
                ref var word = ref page.Words[w & PageMask];
                var value = word & ~WordMask(w, first, last);
                if (value != word)
                {
                    var cleared = BitOperations.PopCount(word) - BitOperations.PopCount(value);
                    word = value;
                    page.SetBits -= cleared;
                    DirtyRegions -= cleared;
                    changed?.Add(new BitmapWord(w, value));
                    words++;
                }
            }

            if (page.SetBits == 0)
            {
                _pages.Remove(pageIndex);
                _pagePresent[pageIndex >> 6] &= ~(1UL << (int)(pageIndex & 63));
            }
        }

        return words;
    }

    private bool SetMask(Page page, long index, ulong mask, List<BitmapWord>? changed)
    {
        ref var word = ref page.Words[index & PageMask];
        var value = word | mask;
        if (value == word)
        {
            return false;
        }

        var added = BitOperations.PopCount(value) - BitOperations.PopCount(word);
        word = value;
        page.SetBits += added;
        DirtyRegions += added;
        changed?.Add(new BitmapWord(index, value));
        return true;
    }

    private Page GetOrAddPage(long pageIndex)
    {
        if (!_pages.TryGetValue(pageIndex, out var page))
        {
            page = new Page();
            _pages.Add(pageIndex, page);
            _pagePresent[pageIndex >> 6] |= 1UL << (int)(pageIndex & 63);
        }

        return page;
    }

    /// <summary>The bits of word <paramref name="w"/> that fall in regions [<paramref name="first"/>, <paramref name="last"/>].</summary>
    private static ulong WordMask(long w, long first, long last)
    {
        var mask = ulong.MaxValue;
        if (w == first >> 6)
        {
            mask &= ulong.MaxValue << (int)(first & 63);
        }

        if (w == last >> 6)
        {
            mask &= ulong.MaxValue >> (63 - (int)(last & 63));
        }

        return mask;
    }

    private sealed class Page
    {
        public readonly ulong[] Words = new ulong[PageWords];
        public int SetBits;
    }
}

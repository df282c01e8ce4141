using System.Numerics;

namespace Replicator.Core.Replication;

/// <summary>Queries: what is dirty, and where the resync scanner goes next.</summary>
internal sealed partial class DirtyBitmap
{
    /// <summary>Whether any region that [<paramref name="offset"/>, +<paramref name="length"/>) touches is dirty.</summary>
    public bool IsDirty(long offset, long length)
    {
        CheckRange(offset, length);
        if (length == 0)
        {
            return false;
        }

        var first = offset >> GranularityShift;
        var next = NextDirty(first);
        return next >= 0 && next <= (offset + length - 1) >> GranularityShift;
    }

    public bool IsRegionDirty(long region)
    {
        if ((ulong)region >= (ulong)RegionCount)
        {
            throw new ArgumentOutOfRangeException(nameof(region), region, $"the bitmap has {RegionCount} regions");
        }

        return (GetWord(region >> 6) & (1UL << (int)(region & 63))) != 0;
    }

    /// <summary>The first dirty region at or after <paramref name="fromRegion"/>, or -1. Skips clean pages without visiting their words.</summary>
    public long NextDirty(long fromRegion)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fromRegion);
        var w = fromRegion >> 6;
        var lowMask = ulong.MaxValue << (int)(fromRegion & 63);
        while (w < WordCount)
        {
            var pageIndex = NextAllocatedPage(w >> PageShift);
            if (pageIndex < 0)
            {
                return -1;
            }

            if (pageIndex != w >> PageShift)
            {
                w = pageIndex << PageShift;
                lowMask = ulong.MaxValue;
            }

            var words = _pages[pageIndex].Words;
            var pageEnd = Math.Min((pageIndex + 1) << PageShift, WordCount);
            for (; w < pageEnd; w++)
            {
                var value = words[w & PageMask] & lowMask;
                lowMask = ulong.MaxValue;
                if (value != 0)
                {
                    return (w << 6) + BitOperations.TrailingZeroCount(value);
                }
            }
        }

        return -1;
    }

    /// <summary>The first clean region at or after <paramref name="fromRegion"/>; <see cref="RegionCount"/> when every one is dirty.</summary>
    public long NextClean(long fromRegion)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fromRegion);
        var w = fromRegion >> 6;
        var lowMask = ulong.MaxValue << (int)(fromRegion & 63);
        while (w < WordCount)
        {
            if (!_pages.TryGetValue(w >> PageShift, out var page))
            {
                return Math.Min(Math.Max(w << 6, fromRegion), RegionCount);
            }

            var value = ~page.Words[w & PageMask] & lowMask;
            lowMask = ulong.MaxValue;
            if (value != 0)
            {
                return Math.Min((w << 6) + BitOperations.TrailingZeroCount(value), RegionCount);
            }

            w++;
        }

        return RegionCount;
    }

    /// <summary>Runs of consecutive dirty regions as (first, count), in order, from <paramref name="fromRegion"/>.</summary>
    /// <remarks>The bitmap must not change while the enumeration runs.</remarks>
    public IEnumerable<(long FirstRegion, long Count)> DirtyRuns(long fromRegion = 0)
    {
        var region = fromRegion;
        while (region < RegionCount)
        {
            var first = NextDirty(region);
            if (first < 0)
            {
                yield break;
            }

            var end = NextClean(first);
            yield return (first, end - first);
            region = end;
        }
    }

    /// <summary>Indices of the pages held in memory (those with a dirty bit), ascending.</summary>
    public IEnumerable<long> AllocatedPageIndices()
    {
        for (var page = NextAllocatedPage(0); page >= 0; page = NextAllocatedPage(page + 1))
        {
            yield return page;
        }
    }

    /// <summary>The words of page <paramref name="pageIndex"/>, or an empty span when the page is clean.</summary>
    public ReadOnlySpan<ulong> PageContents(long pageIndex) =>
        _pages.TryGetValue(pageIndex, out var page) ? page.Words : [];

    /// <summary>The first allocated page at or after <paramref name="fromPage"/>, or -1; reads the summary 64 pages at a time.</summary>
    public long NextAllocatedPage(long fromPage)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fromPage);
        var s = fromPage >> 6;
        if (s >= _pagePresent.Length)
        {
            return -1;
        }

        var value = _pagePresent[s] & (ulong.MaxValue << (int)(fromPage & 63));
        while (value == 0)
        {
            if (++s >= _pagePresent.Length)
            {
                return -1;
            }

            value = _pagePresent[s];
        }

        return (s << 6) + BitOperations.TrailingZeroCount(value);
    }
}

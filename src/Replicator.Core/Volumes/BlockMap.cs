namespace Replicator.Core.Volumes;

/// <summary>
/// A volume's thin map: virtual allocation unit → pool extent. Pure data, no I/O.
/// </summary>
/// <remarks>
/// Memory grows with what is mapped, not with the virtual size: entries live in pages of
/// <see cref="PageEntries"/> units that exist only while at least one unit in them is mapped,
/// so an empty 16 TiB volume costs a few hundred bytes. An entry stores <c>extent + 1</c>, with
/// 0 meaning "hole", which limits a pool to 2^32 - 1 extents.
/// </remarks>
public sealed class BlockMap
{
    public const int PageShift = 10;
    public const int PageEntries = 1 << PageShift;
    private const int PageMask = PageEntries - 1;

    private readonly Dictionary<long, Page> _pages = [];

    /// <summary>Number of mapped units.</summary>
    public long MappedCount { get; private set; }

    /// <summary>Bytes this map holds in pages (excluding the page directory's own overhead).</summary>
    public long PageBytes => (long)_pages.Count * PageEntries * sizeof(uint);

    public bool TryGet(long unit, out long extent)
    {
        if (_pages.TryGetValue(unit >> PageShift, out var page))
        {
            var stored = page.Entries[unit & PageMask];
            if (stored != 0)
            {
                extent = stored - 1L;
                return true;
            }
        }

        extent = -1;
        return false;
    }

    /// <summary>Maps <paramref name="unit"/> to <paramref name="extent"/>; the unit must be unmapped.</summary>
    public void Map(long unit, long extent)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(unit);
        if ((ulong)extent >= uint.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(extent), extent, "extent index does not fit the map");
        }

        var key = unit >> PageShift;
        if (!_pages.TryGetValue(key, out var page))
        {
            page = new Page();
            _pages[key] = page;
        }

        ref var entry = ref page.Entries[unit & PageMask];
        if (entry != 0)
        {
            throw new InvalidOperationException($"unit {unit} is already mapped to extent {entry - 1}");
        }

        entry = (uint)(extent + 1);
        page.Count++;
        MappedCount++;
    }

    /// <summary>Removes the mapping of <paramref name="unit"/>, returning the extent it had.</summary>
    public bool TryUnmap(long unit, out long extent)
    {
        var key = unit >> PageShift;
        if (_pages.TryGetValue(key, out var page))
        {
            ref var entry = ref page.Entries[unit & PageMask];
            if (entry != 0)
            {
                extent = entry - 1L;
                entry = 0;
                MappedCount--;
                if (--page.Count == 0)
                {
                    _pages.Remove(key);
                }

                return true;
            }
        }

        extent = -1;
        return false;
    }

    /// <summary>
    /// The first mapped unit at or after <paramref name="unit"/> and before <paramref name="end"/>,
    /// or -1. Skips absent pages without visiting their units.
    /// </summary>
    public long NextMapped(long unit, long end)
    {
        while (unit < end)
        {
            if (_pages.TryGetValue(unit >> PageShift, out var page))
            {
                var pageEnd = Math.Min(end, ((unit >> PageShift) + 1) << PageShift);
                for (; unit < pageEnd; unit++)
                {
                    if (page.Entries[unit & PageMask] != 0)
                    {
                        return unit;
                    }
                }
            }
            else
            {
                unit = ((unit >> PageShift) + 1) << PageShift;
            }
        }

        return -1;
    }

    /// <summary>Every mapping in ascending unit order.</summary>
    public IEnumerable<(long Unit, long Extent)> Entries()
    {
        foreach (var key in _pages.Keys.Order())
        {
            var entries = _pages[key].Entries;
            for (var i = 0; i < PageEntries; i++)
            {
                if (entries[i] != 0)
                {
                    yield return ((key << PageShift) + i, entries[i] - 1L);
                }
            }
        }
    }

    private sealed class Page
    {
        public readonly uint[] Entries = new uint[PageEntries];
        public int Count;
    }
}

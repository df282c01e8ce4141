using Replicator.Core.Storage;

namespace Replicator.Core.Tests.Support.Faults;

/// <summary>
/// What one file (inode) holds that is not durable yet: for every 4 KiB page changed since the
/// file's last successful flush, the page as it was on disk (its durable image), and the file's
/// durable length. The file's current contents are the memory file system's. Not thread-safe:
/// the <see cref="FaultFileSystem"/> locks.
/// </summary>
/// <remarks>
/// A flush that fails leaves the pages it covered <i>abandoned</i>, as Linux does: still not
/// durable, but no longer dirty, so the next flush succeeds without writing them. Writing such a
/// page again makes it dirty again.
/// </remarks>
internal sealed class UnsyncedChanges
{
    public const int PageSize = 4096;
    public const int SectorSize = 512;

    private readonly Dictionary<long, Page> _pages = [];
    private long? _durableLength;

    /// <summary>Pages that hold data (written and not discarded since): what the file takes of the disk's space.</summary>
    public HashSet<long> Allocated { get; } = [];

    public bool IsClean => _pages.Count == 0 && _durableLength is null;

    /// <summary>
    /// Records the durable image of every page of [offset, +length) not already recorded, before they
    /// change. A discard does not change a page that holds no data, so those are skipped.
    /// </summary>
    public void BeforeChange(MemoryInode inode, long offset, long length, Random random, double writebackChance, bool discard = false)
    {
        if (length <= 0)
        {
            return;
        }

        var first = offset / PageSize;
        var last = (offset + length - 1) / PageSize;
        IEnumerable<long> pages = discard && last - first > Allocated.Count
            ? Allocated.Where(p => p >= first && p <= last).Order().ToList()
            : LongRange(first, last);
        foreach (var page in pages)
        {
            if (discard && !Allocated.Contains(page))
            {
                continue;
            }

            if (_pages.TryGetValue(page, out var recorded))
            {
                if (recorded.Abandoned)
                {
                    recorded.Abandoned = false;
                }
                else if (random.NextDouble() < writebackChance)
                {
                    // Writeback took the page as it is now, between two changes, and the file's size with it.
                    _pages.Remove(page);
                    _pages[page] = Capture(inode, page);
                    if (_durableLength is { } durable)
                    {
                        _durableLength = Math.Max(durable, Math.Min(inode.Length, (page + 1) * PageSize));
                    }
                }

                continue;
            }

            _pages[page] = Capture(inode, page);
        }
    }

    /// <summary>Records the durable length before a change of length.</summary>
    public void BeforeLengthChange(long currentLength) => _durableLength ??= currentLength;

    /// <summary>A flush succeeded: every dirty page is durable, and the size; abandoned pages stay as they were on disk.</summary>
    public void Flushed()
    {
        foreach (var page in _pages.Where(p => !p.Value.Abandoned).Select(p => p.Key).ToList())
        {
            _pages.Remove(page);
        }

        _durableLength = null;
    }

    /// <summary>A flush failed: the pages it covered are dropped from writeback without reaching the disk (the size is written with the next flush).</summary>
    public void FlushFailed()
    {
        foreach (var page in _pages.Values)
        {
            page.Abandoned = true;
        }
    }

    /// <summary>The power went: turns the file's contents into what the disk holds, by <paramref name="mode"/>.</summary>
    public void PowerLoss(MemoryInode inode, PowerLossMode mode, Random random)
    {
        var currentLength = inode.Length;
        var bytes = new byte[PageSize];
        foreach (var (index, page) in _pages.OrderBy(p => p.Key))
        {
            var survives = page.Abandoned || mode == PowerLossMode.DropUnsynced ? Survival.None
                : mode == PowerLossMode.TornSectors ? Survival.Some
                : random.Next(2) == 0 ? Survival.None : Survival.All;
            if (survives == Survival.All)
            {
                continue;
            }

            var offset = index * PageSize;
            bytes.AsSpan().Clear();
            inode.Read(offset, bytes);
            for (var sector = 0; sector < PageSize / SectorSize; sector++)
            {
                if (survives == Survival.None || random.Next(2) == 0)
                {
                    page.Durable.AsSpan(sector * SectorSize, SectorSize).CopyTo(bytes.AsSpan(sector * SectorSize));
                }
            }

            inode.Write(offset, bytes);
            if (page.WasAllocated)
            {
                Allocated.Add(index);
            }
            else if (survives == Survival.None)
            {
                inode.Discard(offset, PageSize);
                Allocated.Remove(index);
            }
        }

        var lengthLost = _durableLength is not null && (mode == PowerLossMode.DropUnsynced || random.Next(2) == 0);
        inode.SetLength(lengthLost ? _durableLength!.Value : currentLength);
        Allocated.RemoveWhere(p => p * PageSize >= inode.Length);
        _pages.Clear();
        _durableLength = null;
    }

    private enum Survival
    {
        None,
        Some,
        All,
    }

    private static IEnumerable<long> LongRange(long first, long last)
    {
        for (var page = first; page <= last; page++)
        {
            yield return page;
        }
    }

    /// <summary>The page as it is now; a page that holds no data is all zeros and needs no copy.</summary>
    private Page Capture(MemoryInode inode, long page)
    {
        if (!Allocated.Contains(page))
        {
            return new Page(null, wasAllocated: false);
        }

        var bytes = new byte[PageSize];
        inode.Read(page * PageSize, bytes);
        return new Page(bytes, wasAllocated: true);
    }

    private sealed class Page(byte[]? durable, bool wasAllocated)
    {
        private static readonly byte[] s_zeros = new byte[PageSize];

        public byte[] Durable { get; } = durable ?? s_zeros;

        public bool WasAllocated { get; } = wasAllocated;

        public bool Abandoned { get; set; }
    }
}

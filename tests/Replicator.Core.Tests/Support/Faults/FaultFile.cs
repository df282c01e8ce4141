using Replicator.Core.Storage;

namespace Replicator.Core.Tests.Support.Faults;

/// <summary>
/// A file of a <see cref="FaultFileSystem"/>: each change records the durable image of the pages
/// it touches before it reaches the memory file, each call first meets the crash point and the
/// injected errors. See <see cref="FaultFileSystem"/>.
/// </summary>
internal sealed class FaultFile(FaultFileSystem fs, IStorageFile file, MemoryInode inode, int epoch) : IStorageFile
{
    private const int PageSize = UnsyncedChanges.PageSize;

    public string Path => file.Path;

    public long Length
    {
        get
        {
            lock (fs.SyncRoot)
            {
                fs.ThrowIfStale(epoch, Path);
                return file.Length;
            }
        }
    }

    public int Read(long offset, Span<byte> destination)
    {
        lock (fs.SyncRoot)
        {
            fs.ThrowIfStale(epoch, Path);
            fs.BeforeRead(Path);
            return file.Read(offset, destination);
        }
    }

    public void Write(long offset, ReadOnlySpan<byte> source)
    {
        if (source.IsEmpty)
        {
            return;
        }

        fs.RaiseChanging(new FileChange(Path, IoOperation.Write, offset, source.Length));
        IOException? noSpace = null;
        lock (fs.SyncRoot)
        {
            fs.ThrowIfStale(epoch, Path);
            fs.Change(IoOperation.Write, Path);
            var changes = fs.UnsyncedOf(inode);

            // Space is taken page by page from the start: what does not fit is not written (a short write, then ENOSPC).
            var fits = source.Length;
            var firstPage = offset / PageSize;
            var lastPage = (offset + source.Length - 1) / PageSize;
            var needed = 0L;
            for (var page = firstPage; page <= lastPage; page++)
            {
                if (!changes.Allocated.Contains(page))
                {
                    needed++;
                }
            }

            var granted = fs.TakeSpace(needed);
            if (granted < needed)
            {
                var taken = 0L;
                for (var page = firstPage; page <= lastPage; page++)
                {
                    if (!changes.Allocated.Contains(page) && taken++ == granted)
                    {
                        fits = (int)Math.Max(0, (page * PageSize) - offset);
                        break;
                    }
                }

                noSpace = FaultFileSystem.Error(Errno.ENOSPC, Path);
            }

            if (fits > 0)
            {
                changes.BeforeChange(inode, offset, fits, fs.Random, fs.WritebackChance);
                if (offset + fits > file.Length)
                {
                    changes.BeforeLengthChange(file.Length);
                }

                file.Write(offset, source[..fits]);
                for (var page = firstPage; page <= (offset + fits - 1) / PageSize; page++)
                {
                    changes.Allocated.Add(page);
                }
            }
        }

        if (noSpace is not null)
        {
            throw noSpace;
        }
    }

    public void SetLength(long length)
    {
        lock (fs.SyncRoot)
        {
            fs.ThrowIfStale(epoch, Path);
            fs.Change(IoOperation.Write, Path);
            var changes = fs.UnsyncedOf(inode);
            var current = file.Length;
            if (length < current)
            {
                changes.BeforeChange(inode, length, current - length, fs.Random, fs.WritebackChance, discard: true);
                var freed = changes.Allocated.RemoveWhere(p => p * PageSize >= length);
                fs.GiveSpace(freed);
            }

            changes.BeforeLengthChange(current);
            file.SetLength(length);
        }
    }

    public void Flush()
    {
        lock (fs.SyncRoot)
        {
            fs.ThrowIfStale(epoch, Path);
            var changes = fs.UnsyncedOf(inode);
            try
            {
                fs.Change(IoOperation.Flush, Path);
            }
            catch (IOException)
            {
                changes.FlushFailed();
                throw;
            }

            changes.Flushed();
            file.Flush();
        }
    }

    public void Discard(long offset, long length)
    {
        if (length <= 0)
        {
            return;
        }

        fs.RaiseChanging(new FileChange(Path, IoOperation.Write, offset, length));
        lock (fs.SyncRoot)
        {
            fs.ThrowIfStale(epoch, Path);
            fs.Change(IoOperation.Write, Path);
            var changes = fs.UnsyncedOf(inode);
            var end = Math.Min(offset + length, file.Length);
            if (end <= offset)
            {
                return;
            }

            changes.BeforeChange(inode, offset, end - offset, fs.Random, fs.WritebackChance, discard: true);
            file.Discard(offset, end - offset);
            var firstWhole = (offset + PageSize - 1) / PageSize;
            var endWhole = end == file.Length ? (end + PageSize - 1) / PageSize : end / PageSize;
            var freed = 0;
            for (var page = firstWhole; page < endWhole; page++)
            {
                if (changes.Allocated.Remove(page))
                {
                    freed++;
                }
            }

            fs.GiveSpace(freed);
        }
    }

    public long NextData(long offset)
    {
        lock (fs.SyncRoot)
        {
            fs.ThrowIfStale(epoch, Path);
            return file.NextData(offset);
        }
    }

    public long NextHole(long offset)
    {
        lock (fs.SyncRoot)
        {
            fs.ThrowIfStale(epoch, Path);
            return file.NextHole(offset);
        }
    }

    public void Dispose()
    {
    }
}

using Replicator.Core.Storage;

namespace Replicator.Core.Tests.Support.Faults;

/// <summary>
/// A file system for crash and fault tests, after RocksDB's <c>FaultInjectionTestFS</c> and
/// LevelDB's fault-injection env: files live in a <see cref="MemoryFileSystem"/>, and this layer
/// remembers what would survive a power loss — per file, the pages changed since its last
/// successful flush (<see cref="UnsyncedChanges"/>); per directory, its entries as of its last sync.
/// </summary>
/// <remarks>
/// <para><b>Power loss.</b> <see cref="CutPowerAt"/> picks a crash point: the n-th change from now
/// (a write, discard, length change, flush, create, rename, delete or directory sync) does not
/// happen; it and every later call throw <see cref="PowerCutException"/>, as if the process died
/// there. <see cref="PowerLoss"/> then turns the files into what the disk holds: every change not
/// flushed is undone (or, by <see cref="Mode"/>, each unsynced page or sector survives or not, from
/// the seeded random source), every create, rename and delete not followed by a sync of its
/// directory is undone, open files and locks are gone. The test opens the engine again on the same
/// file system. <see cref="WritebackChance"/> lets a page reach the disk between two changes, as
/// writeback does, so an intermediate state can survive too.</para>
/// <para><b>Errors.</b> <see cref="FailNext"/> makes the next matching call fail with an errno (EIO
/// by default), thrown as .NET throws it: an <see cref="IOException"/> whose HResult is the errno. A
/// failed flush follows Linux: the dirty pages it covered stay not durable, and the next flush
/// succeeds without writing them. <see cref="SpaceLeft"/> bounds the new space writes may take
/// (4 KiB pages not allocated before); a write that needs more writes what fits and fails with ENOSPC.</para>
/// <para>Thread-safe: every call runs under one lock (hooks run outside it). Deterministic for a
/// seed when the engine's calls come in a deterministic order.</para>
/// </remarks>
internal sealed class FaultFileSystem : IFileSystem
{
    private readonly Lock _lock = new();
    private readonly MemoryFileSystem _memory = new();
    private readonly Dictionary<string, Dictionary<string, MemoryInode>> _durableEntries = [];
    private readonly Dictionary<MemoryInode, UnsyncedChanges> _unsynced = new(ReferenceEqualityComparer.Instance);
    private readonly List<MemoryInode> _inodes = [];
    private readonly List<FaultRule> _rules = [];
    private readonly List<IDisposable> _locks = [];
    private readonly Random _random;
    private long _cutAt = -1;
    private bool _dead;
    private int _epoch;

    public FaultFileSystem(int seed = 0)
    {
        Seed = seed;
        _random = new Random(seed);
        _durableEntries["/"] = [];
    }

    public int Seed { get; }

    public PowerLossMode Mode { get; set; } = PowerLossMode.DropUnsynced;

    /// <summary>Chance that a page changed again since the last flush reached the disk in between (0: never).</summary>
    public double WritebackChance { get; set; }

    /// <summary>New space (bytes, in 4 KiB pages) writes may still take; null: as much as they want.</summary>
    public long? SpaceLeft { get; set; }

    /// <summary>Changes (writes, discards, length changes, flushes, directory changes) made so far.</summary>
    public long Changes { get; private set; }

    /// <summary>Power losses so far.</summary>
    public int PowerLosses { get; private set; }

    /// <summary>Called, outside the lock, before each write or discard reaches a file.</summary>
    public Action<FileChange>? Changing { get; set; }

    public bool IsPowerCut
    {
        get
        {
            lock (_lock)
            {
                return _dead;
            }
        }
    }

    /// <summary>The <paramref name="n"/>-th change from now (1: the next one) does not happen: the power goes instead.</summary>
    public void CutPowerAt(long n)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        lock (_lock)
        {
            _cutAt = Changes + n;
        }
    }

    /// <summary>Forgets a crash point set by <see cref="CutPowerAt"/> that was not reached.</summary>
    public void CancelPowerCut()
    {
        lock (_lock)
        {
            _cutAt = -1;
        }
    }

    /// <summary>
    /// Makes the next <paramref name="times"/> calls of <paramref name="operation"/> on a path
    /// <paramref name="where"/> accepts (every path when null) fail with <paramref name="errno"/>.
    /// </summary>
    public void FailNext(IoOperation operation, int errno = Errno.EIO, Func<string, bool>? where = null, int times = 1)
    {
        lock (_lock)
        {
            _rules.Add(new FaultRule(operation, errno, where, times));
        }
    }

    /// <summary>Removes every injected error and the space limit.</summary>
    public void ClearFaults()
    {
        lock (_lock)
        {
            _rules.Clear();
            SpaceLeft = null;
        }
    }

    /// <summary>
    /// Cuts the power (if <see cref="CutPowerAt"/> has not already) and brings it back: the files
    /// are what the disk held, every handle and lock opened before is dead.
    /// </summary>
    public void PowerLoss()
    {
        lock (_lock)
        {
            foreach (var directory in _memory.Directories)
            {
                _memory.SetEntries(directory, _durableEntries.GetValueOrDefault(directory) ?? []);
            }

            // Every file ever seen, in the order first seen, so a seed replays the same losses.
            foreach (var inode in _inodes)
            {
                var changes = _unsynced[inode];
                if (!changes.IsClean)
                {
                    changes.PowerLoss(inode, Mode, _random);
                }
            }

            _memory.ReleaseAllLocks();
            _locks.Clear();
            _rules.Clear();
            _cutAt = -1;
            _dead = false;
            _epoch++;
            PowerLosses++;
            ForgetUnreachableFiles();
        }
    }

    /// <summary>
    /// The process died (kill -9) but the machine did not: every handle and lock it held is gone,
    /// everything it wrote stays (the page cache survives).
    /// </summary>
    public void KillProcess()
    {
        lock (_lock)
        {
            _memory.ReleaseAllLocks();
            _locks.Clear();
            _cutAt = -1;
            _dead = false;
            _epoch++;
        }
    }

    public bool FileExists(string path)
    {
        lock (_lock)
        {
            ThrowIfDead();
            return _memory.FileExists(path);
        }
    }

    public IStorageFile OpenFile(string path, FileOpenMode mode)
    {
        lock (_lock)
        {
            if (mode == FileOpenMode.CreateNew)
            {
                Change(IoOperation.Directory, path);
            }
            else
            {
                ThrowIfDead();
            }

            var file = _memory.OpenFile(path, mode);
            return new FaultFile(this, file, InodeOf(path), _epoch);
        }
    }

    public void DeleteFile(string path)
    {
        lock (_lock)
        {
            Change(IoOperation.Directory, path);
            _memory.DeleteFile(path);
        }
    }

    public void RenameFile(string source, string destination)
    {
        lock (_lock)
        {
            Change(IoOperation.Directory, destination);
            _memory.RenameFile(source, destination);
        }
    }

    public IReadOnlyList<string> ListFiles(string directory, string prefix)
    {
        lock (_lock)
        {
            ThrowIfDead();
            return _memory.ListFiles(directory, prefix);
        }
    }

    public void CreateDirectory(string path)
    {
        lock (_lock)
        {
            Change(IoOperation.Directory, path);
            _memory.CreateDirectory(path);

            // Durable at once, as the seam promises: the physical file system syncs each new directory's parent.
            foreach (var directory in _memory.Directories)
            {
                _durableEntries.TryAdd(directory, []);
            }
        }
    }

    public void SyncDirectory(string path)
    {
        lock (_lock)
        {
            Change(IoOperation.Directory, path);
            _memory.SyncDirectory(path);
            _durableEntries[MemoryFileSystem.Full(path)] = _memory.Entries(path);
        }
    }

    public IDisposable LockFile(string path)
    {
        lock (_lock)
        {
            ThrowIfDead();
            var held = _memory.LockFile(path);
            InodeOf(path);
            _locks.Add(held);
            return new HeldLock(this, held, _epoch);
        }
    }

    /// <summary>The files that exist now (for tests that look at what survived).</summary>
    public IReadOnlyList<string> AllFiles() =>
        _memory.Directories.SelectMany(d => _memory.ListFiles(d, "")).Order(StringComparer.Ordinal).ToList();

    /// <summary>
    /// Counts one change and applies the crash point and injected errors to it. Called under the
    /// lock before the change is made; throws instead of letting it happen.
    /// </summary>
    internal void Change(IoOperation operation, string path)
    {
        ThrowIfDead();
        Changes++;
        if (Changes == _cutAt)
        {
            _dead = true;
            throw new PowerCutException($"the power was cut at change {Changes} ({operation} of {path})");
        }

        ThrowIfInjected(operation, path);
    }

    /// <summary>Applies injected errors to a read (reads are not changes and never crash points).</summary>
    internal void BeforeRead(string path)
    {
        ThrowIfDead();
        ThrowIfInjected(IoOperation.Read, path);
    }

    internal void ThrowIfStale(int epoch, string path)
    {
        ThrowIfDead();
        if (epoch != _epoch)
        {
            throw new PowerCutException($"{path} was opened before the last power loss; the process that held it is gone");
        }
    }

    /// <summary>The unsynced changes of a file; one deleted and forgotten meanwhile (still open) gets a fresh record nobody will read.</summary>
    internal UnsyncedChanges UnsyncedOf(MemoryInode inode) =>
        _unsynced.TryGetValue(inode, out var changes) ? changes : new UnsyncedChanges();

    internal Random Random => _random;

    internal Lock SyncRoot => _lock;

    /// <summary>Takes <paramref name="pages"/> new pages of space, or as many as there are, and says how many it got.</summary>
    internal long TakeSpace(long pages)
    {
        if (SpaceLeft is not { } left)
        {
            return pages;
        }

        var granted = Math.Min(pages, left / UnsyncedChanges.PageSize);
        SpaceLeft = left - (granted * UnsyncedChanges.PageSize);
        return granted;
    }

    internal void GiveSpace(long pages)
    {
        if (SpaceLeft is { } left)
        {
            SpaceLeft = left + (pages * UnsyncedChanges.PageSize);
        }
    }

    internal void RaiseChanging(FileChange change) => Changing?.Invoke(change);

    internal static IOException Error(int errno, string path) => new(errno switch
    {
        Errno.EIO => $"Input/output error : '{path}'",
        Errno.ENOSPC => $"No space left on device : '{path}'",
        _ => $"errno {errno} : '{path}'",
    }, errno);

    private MemoryInode InodeOf(string path)
    {
        var inode = _memory.InodeAt(path);
        if (_unsynced.TryAdd(inode, new UnsyncedChanges()))
        {
            _inodes.Add(inode);
        }

        return inode;
    }

    /// <summary>
    /// Drops what is kept for files that no name reaches now and no name reached at a directory's
    /// last sync: a power loss cannot bring them back. Keeps a long run's memory flat (run at each power loss).
    /// </summary>
    private void ForgetUnreachableFiles()
    {
        var reachable = new HashSet<MemoryInode>(ReferenceEqualityComparer.Instance);
        foreach (var entries in _durableEntries.Values)
        {
            reachable.UnionWith(entries.Values);
        }

        foreach (var directory in _memory.Directories)
        {
            reachable.UnionWith(_memory.Entries(directory).Values);
        }

        foreach (var inode in _inodes.Where(i => !reachable.Contains(i)).ToList())
        {
            _unsynced.Remove(inode);
        }

        _inodes.RemoveAll(i => !reachable.Contains(i));
    }

    private void ThrowIfDead()
    {
        if (_dead)
        {
            throw new PowerCutException("the power is cut");
        }
    }

    private void ThrowIfInjected(IoOperation operation, string path)
    {
        for (var i = 0; i < _rules.Count; i++)
        {
            var rule = _rules[i];
            if ((rule.Operation & operation) == 0 || (rule.Where is not null && !rule.Where(path)))
            {
                continue;
            }

            if (--rule.Times == 0)
            {
                _rules.RemoveAt(i);
            }

            throw Error(rule.Errno, path);
        }
    }

    private sealed class FaultRule(IoOperation operation, int errno, Func<string, bool>? where, int times)
    {
        public IoOperation Operation { get; } = operation;

        public int Errno { get; } = errno;

        public Func<string, bool>? Where { get; } = where;

        public int Times { get; set; } = times;
    }

    private sealed class HeldLock(FaultFileSystem fs, IDisposable held, int epoch) : IDisposable
    {
        public void Dispose()
        {
            lock (fs._lock)
            {
                // A lock from before a power loss died with its process; the new one may belong to someone else.
                if (epoch == fs._epoch && !fs._dead)
                {
                    held.Dispose();
                    fs._locks.Remove(held);
                }
            }
        }
    }
}

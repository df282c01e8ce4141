namespace Replicator.Core.Storage;

/// <summary>
/// A file system in memory, for benchmarks and tests: files are sparse (memory is taken in 64 KiB
/// chunks as they are written), flushes and directory syncs cost nothing, and nothing is ever lost.
/// Thread-safe. The tests' fault-injecting file system is built on it and decides what a power
/// loss takes away.
/// </summary>
public sealed class MemoryFileSystem : IFileSystem
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, MemoryInode> _files = [];
    private readonly HashSet<string> _directories = ["/"];
    private readonly HashSet<string> _locks = [];

    /// <summary>Flushes (fsync) so far, of any file.</summary>
    public int FlushCount => Volatile.Read(ref _flushCount);

    private int _flushCount;

    public bool FileExists(string path)
    {
        lock (_lock)
        {
            return _files.ContainsKey(Full(path));
        }
    }

    public IStorageFile OpenFile(string path, FileOpenMode mode)
    {
        var full = Full(path);
        lock (_lock)
        {
            if (_files.TryGetValue(full, out var inode))
            {
                return mode == FileOpenMode.CreateNew
                    ? throw new IOException($"The file '{full}' already exists.", 17)
                    : new MemoryFile(this, full, inode);
            }

            if (mode == FileOpenMode.Open)
            {
                throw new FileNotFoundException($"Could not find file '{full}'.", full);
            }

            CheckDirectoryLocked(DirectoryOf(full));
            inode = new MemoryInode();
            _files[full] = inode;
            return new MemoryFile(this, full, inode);
        }
    }

    public void DeleteFile(string path)
    {
        lock (_lock)
        {
            _files.Remove(Full(path));
        }
    }

    public void RenameFile(string source, string destination)
    {
        var from = Full(source);
        var to = Full(destination);
        lock (_lock)
        {
            if (!_files.Remove(from, out var inode))
            {
                throw new FileNotFoundException($"Could not find file '{from}'.", from);
            }

            CheckDirectoryLocked(DirectoryOf(to));
            _files[to] = inode;
        }
    }

    public IReadOnlyList<string> ListFiles(string directory, string prefix)
    {
        var full = Full(directory);
        lock (_lock)
        {
            CheckDirectoryLocked(full);
            return _files.Keys.Where(p => DirectoryOf(p) == full && Path.GetFileName(p).StartsWith(prefix, StringComparison.Ordinal)).ToList();
        }
    }

    public void CreateDirectory(string path)
    {
        lock (_lock)
        {
            for (var d = Full(path); d is not null && !_directories.Contains(d); d = Path.GetDirectoryName(d))
            {
                if (_files.ContainsKey(d))
                {
                    throw new IOException($"'{d}' is a file", 17);
                }

                _directories.Add(d);
            }
        }
    }

    public void SyncDirectory(string path)
    {
        lock (_lock)
        {
            CheckDirectoryLocked(Full(path));
        }
    }

    public IDisposable LockFile(string path)
    {
        var full = Full(path);
        lock (_lock)
        {
            CheckDirectoryLocked(DirectoryOf(full));
            if (!_locks.Add(full))
            {
                throw new IOException($"{full} is locked by another process", 11);
            }

            if (!_files.ContainsKey(full))
            {
                _files[full] = new MemoryInode();
            }
        }

        return new FileLock(this, full);
    }

    /// <summary>The contents <paramref name="path"/> names.</summary>
    internal MemoryInode InodeAt(string path)
    {
        var full = Full(path);
        lock (_lock)
        {
            return _files.TryGetValue(full, out var inode) ? inode : throw new FileNotFoundException($"Could not find file '{full}'.", full);
        }
    }

    /// <summary>The files directly in <paramref name="directory"/>, by name.</summary>
    internal Dictionary<string, MemoryInode> Entries(string directory)
    {
        var full = Full(directory);
        lock (_lock)
        {
            return _files.Where(f => DirectoryOf(f.Key) == full).ToDictionary(f => Path.GetFileName(f.Key), f => f.Value);
        }
    }

    /// <summary>Makes <paramref name="directory"/> hold exactly <paramref name="entries"/> (a power loss undoing what was not synced).</summary>
    internal void SetEntries(string directory, IReadOnlyDictionary<string, MemoryInode> entries)
    {
        var full = Full(directory);
        lock (_lock)
        {
            foreach (var path in _files.Keys.Where(p => DirectoryOf(p) == full).ToList())
            {
                _files.Remove(path);
            }

            foreach (var (name, inode) in entries)
            {
                _files[Path.Combine(full, name)] = inode;
            }
        }
    }

    internal IReadOnlyList<string> Directories
    {
        get
        {
            lock (_lock)
            {
                return _directories.ToList();
            }
        }
    }

    /// <summary>Drops every lock (the process holding them died).</summary>
    internal void ReleaseAllLocks()
    {
        lock (_lock)
        {
            _locks.Clear();
        }
    }

    internal static string Full(string path) => Path.GetFullPath(path);

    internal static string DirectoryOf(string fullPath) => Path.GetDirectoryName(fullPath) ?? "/";

    private void CheckDirectoryLocked(string directory)
    {
        if (!_directories.Contains(directory))
        {
            throw new DirectoryNotFoundException($"Could not find a part of the path '{directory}'.");
        }
    }

    private sealed class FileLock(MemoryFileSystem fs, string path) : IDisposable
    {
        private bool _released;

        public void Dispose()
        {
            lock (fs._lock)
            {
                if (!_released)
                {
                    _released = true;
                    fs._locks.Remove(path);
                }
            }
        }
    }

    private sealed class MemoryFile(MemoryFileSystem fs, string path, MemoryInode inode) : IStorageFile
    {
        public string Path { get; } = path;

        public long Length => inode.Length;

        internal MemoryInode Inode => inode;

        public int Read(long offset, Span<byte> destination) => inode.Read(offset, destination);

        public void Write(long offset, ReadOnlySpan<byte> source) => inode.Write(offset, source);

        public void SetLength(long length) => inode.SetLength(length);

        public void Flush() => Interlocked.Increment(ref fs._flushCount);

        public void Discard(long offset, long length) => inode.Discard(offset, length);

        public long NextData(long offset) => inode.NextData(offset);

        public long NextHole(long offset) => inode.NextHole(offset);

        public void Dispose()
        {
        }
    }
}

/// <summary>A file's contents in a <see cref="MemoryFileSystem"/>, whatever names it has. Thread-safe.</summary>
internal sealed class MemoryInode
{
    private readonly Lock _lock = new();
    private readonly SparseBytes _data = new();
    private long _length;

    public long Length
    {
        get
        {
            lock (_lock)
            {
                return _length;
            }
        }
    }

    public long AllocatedBytes
    {
        get
        {
            lock (_lock)
            {
                return _data.AllocatedBytes;
            }
        }
    }

    public int Read(long offset, Span<byte> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        lock (_lock)
        {
            var count = (int)Math.Clamp(_length - offset, 0, destination.Length);
            _data.Read(offset, destination[..count]);
            return count;
        }
    }

    public void Write(long offset, ReadOnlySpan<byte> source)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        lock (_lock)
        {
            _data.Write(offset, source);
            _length = Math.Max(_length, offset + source.Length);
        }
    }

    public void SetLength(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        lock (_lock)
        {
            if (length < _length)
            {
                _data.Clear(length, _length - length);
            }

            _length = length;
        }
    }

    public void Discard(long offset, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        lock (_lock)
        {
            _data.Clear(offset, Math.Clamp(_length - offset, 0, length));
        }
    }

    public long NextData(long offset)
    {
        lock (_lock)
        {
            var next = offset < _length ? _data.NextChunk(offset) : -1;
            return next >= 0 && next < _length ? next : -1;
        }
    }

    public long NextHole(long offset)
    {
        lock (_lock)
        {
            var position = offset;
            while (position < _length && _data.HasChunk(position))
            {
                position = (position & ~(long)(SparseBytes.ChunkSize - 1)) + SparseBytes.ChunkSize;
            }

            return Math.Min(Math.Max(position, offset), _length);
        }
    }
}

using Microsoft.Win32.SafeHandles;

namespace Replicator.Core.Storage;

/// <summary>The node's own disk: files through <see cref="RandomAccess"/>, the rest through libc where .NET has no call.</summary>
public sealed class PhysicalFileSystem : IFileSystem
{
    public const UnixFileMode FileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    public const UnixFileMode DirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    public static PhysicalFileSystem Instance { get; } = new();

    private PhysicalFileSystem()
    {
    }

    public bool FileExists(string path) => File.Exists(path);

    public IStorageFile OpenFile(string path, FileOpenMode mode)
    {
        // A FileStream only to create the file with its mode in the same open(2); every read and
        // write goes through its handle with RandomAccess, never through the stream's buffer.
        var stream = new FileStream(path, new FileStreamOptions
        {
            Mode = mode == FileOpenMode.CreateNew ? System.IO.FileMode.CreateNew : System.IO.FileMode.Open,
            Access = FileAccess.ReadWrite,
            Share = FileShare.Read,
            BufferSize = 0,
            UnixCreateMode = mode == FileOpenMode.CreateNew ? FileMode : null,
        });
        return new PhysicalFile(path, stream);
    }

    public void DeleteFile(string path) => File.Delete(path);

    public void RenameFile(string source, string destination) => File.Move(source, destination, overwrite: true);

    public IReadOnlyList<string> ListFiles(string directory, string prefix) =>
        Directory.EnumerateFiles(directory, prefix + "*").ToList();

    public void CreateDirectory(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        var missing = new Stack<string>();
        for (var d = full; d is not null && !Directory.Exists(d); d = System.IO.Path.GetDirectoryName(d))
        {
            missing.Push(d);
        }

        while (missing.TryPop(out var directory))
        {
            Directory.CreateDirectory(directory, DirectoryMode);
            Posix.SyncDirectory(System.IO.Path.GetDirectoryName(directory)!);
        }
    }

    public void SyncDirectory(string path) => Posix.SyncDirectory(path);

    public IDisposable LockFile(string path)
    {
        try
        {
            return new FileStream(path, new FileStreamOptions
            {
                Mode = System.IO.FileMode.OpenOrCreate,
                Access = FileAccess.ReadWrite,
                Share = FileShare.None,
                UnixCreateMode = FileMode,
            });
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            throw new IOException($"{path} is locked by another process", e);
        }
    }

    /// <summary>A file on disk. Sealed, so the pool's data path is one interface call to RandomAccess.</summary>
    private sealed class PhysicalFile(string path, FileStream stream) : IStorageFile
    {
        private static readonly byte[] s_zeros = new byte[1 << 20];
        private readonly SafeFileHandle _handle = stream.SafeFileHandle;
        private bool _punchUnsupported;

        public string Path { get; } = path;

        public long Length => RandomAccess.GetLength(_handle);

        public int Read(long offset, Span<byte> destination)
        {
            var total = 0;
            while (total < destination.Length)
            {
                var read = RandomAccess.Read(_handle, destination[total..], offset + total);
                if (read == 0)
                {
                    break;
                }

                total += read;
            }

            return total;
        }

        public void Write(long offset, ReadOnlySpan<byte> source) => RandomAccess.Write(_handle, source, offset);

        public void SetLength(long length) => RandomAccess.SetLength(_handle, length);

        public void Flush() => RandomAccess.FlushToDisk(_handle);

        public void Discard(long offset, long length)
        {
            if (length == 0)
            {
                return;
            }

            if (!_punchUnsupported)
            {
                if (Posix.TryPunchHole(_handle, Path, offset, length))
                {
                    return;
                }

                _punchUnsupported = true;
            }

            // Without hole punching, zeros are written, but only where the file holds data: a
            // sparse file (a bitmap of a 16 TiB volume) is not filled in.
            var end = offset + length;
            for (var position = NextData(offset); position >= 0 && position < end; position = NextData(position))
            {
                var stop = Math.Min(NextHole(position), end);
                while (position < stop)
                {
                    var count = (int)Math.Min(stop - position, s_zeros.Length);
                    RandomAccess.Write(_handle, s_zeros.AsSpan(0, count), position);
                    position += count;
                }
            }
        }

        public long NextData(long offset) => Posix.NextData(_handle, offset);

        public long NextHole(long offset) => Posix.NextHole(_handle, offset);

        public void Dispose() => stream.Dispose();
    }
}

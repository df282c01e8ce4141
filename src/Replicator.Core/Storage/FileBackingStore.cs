using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Replicator.Core.Storage;

/// <summary>
/// A pool file on the node's disk. The file is created sparse at its full capacity, so space is
/// taken from the file system only as extents are written; <see cref="Discard"/> punches holes
/// to give it back.
/// </summary>
public sealed class FileBackingStore : IBackingStore
{
    private static readonly byte[] s_zeros = new byte[1 << 20];

    private readonly SafeFileHandle _handle;
    private bool _punchUnsupported;

    private FileBackingStore(string path, SafeFileHandle handle, long length)
    {
        Path = path;
        _handle = handle;
        Length = length;
    }

    public string Path { get; }

    public long Length { get; }

    /// <summary>Creates a new sparse file of <paramref name="length"/> bytes; fails if it exists.</summary>
    public static FileBackingStore Create(string path, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read);
        try
        {
            RandomAccess.SetLength(handle, length);
            return new FileBackingStore(path, handle, length);
        }
        catch
        {
            handle.Dispose();
            File.Delete(path);
            throw;
        }
    }

    /// <summary>Opens an existing pool file, which must be exactly <paramref name="expectedLength"/> bytes.</summary>
    public static FileBackingStore Open(string path, long expectedLength)
    {
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
        var length = RandomAccess.GetLength(handle);
        if (length != expectedLength)
        {
            handle.Dispose();
            throw new InvalidDataException($"pool file {path} is {length} bytes, the pool metadata says {expectedLength}; refusing to use it");
        }

        return new FileBackingStore(path, handle, length);
    }

    public void Read(long offset, Span<byte> destination)
    {
        while (!destination.IsEmpty)
        {
            var read = RandomAccess.Read(_handle, destination, offset);
            if (read == 0)
            {
                // Past the end of a file that was truncated behind our back: what is missing reads as zeros.
                destination.Clear();
                return;
            }

            destination = destination[read..];
            offset += read;
        }
    }

    public void Write(long offset, ReadOnlySpan<byte> source) => RandomAccess.Write(_handle, source, offset);

    public void Discard(long offset, long length)
    {
        if (length == 0)
        {
            return;
        }

        if (!_punchUnsupported)
        {
            if (Posix.Fallocate(_handle, Posix.FallocFlPunchHole | Posix.FallocFlKeepSize, offset, length) == 0)
            {
                return;
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno != Posix.EOPNOTSUPP)
            {
                throw new IOException($"punching a hole of {length} bytes at {offset} in {Path} failed: errno {errno}");
            }

            _punchUnsupported = true;
        }

        while (length > 0)
        {
            var count = (int)Math.Min(length, s_zeros.Length);
            RandomAccess.Write(_handle, s_zeros.AsSpan(0, count), offset);
            offset += count;
            length -= count;
        }
    }

    public void Flush() => RandomAccess.FlushToDisk(_handle);

    public void Dispose() => _handle.Dispose();
}

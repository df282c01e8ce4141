using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Replicator.Core.Replication;

/// <summary>
/// <c>lseek</c> with <c>SEEK_DATA</c> / <c>SEEK_HOLE</c>, so a sparse bitmap file is read only where
/// something was ever written. File systems without hole tracking report the whole file as data,
/// which is still correct, only slower.
/// </summary>
internal static partial class SparseFileInterop
{
    private const int SeekData = 3;
    private const int SeekHole = 4;
    private const int ENXIO = 6;

    /// <summary>The first offset at or after <paramref name="offset"/> that holds data, or -1 when only holes follow.</summary>
    public static long NextData(SafeFileHandle handle, long offset) => Seek(handle, offset, SeekData);

    /// <summary>The first hole at or after <paramref name="offset"/>; the end of the file counts as one.</summary>
    public static long NextHole(SafeFileHandle handle, long offset)
    {
        var hole = Seek(handle, offset, SeekHole);
        return hole < 0 ? RandomAccess.GetLength(handle) : hole;
    }

    private static long Seek(SafeFileHandle handle, long offset, int whence)
    {
        var result = LSeek(handle, offset, whence);
        if (result >= 0)
        {
            return result;
        }

        var errno = Marshal.GetLastPInvokeError();
        return errno == ENXIO
            ? -1
            : throw new IOException($"lseek({offset}, {(whence == SeekData ? "SEEK_DATA" : "SEEK_HOLE")}) failed: errno {errno}");
    }

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    private static partial long LSeek(SafeFileHandle fd, long offset, int whence);
}

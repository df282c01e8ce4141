using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Replicator.Core.Storage;

/// <summary>The few libc calls .NET does not expose: hole punching, SEEK_DATA/SEEK_HOLE, syncing a directory, signals, a file's group.</summary>
internal static partial class Posix
{
    public const int EIO = 5;
    public const int ENOSPC = 28;
    public const int EOPNOTSUPP = 95;
    public const int SigKill = 9;
    public const int SigTerm = 15;
    private const int FallocFlKeepSize = 0x01;
    private const int FallocFlPunchHole = 0x02;
    private const int ESRCH = 3;
    private const int ENXIO = 6;
    private const int ORdOnly = 0;
    private const int ODirectory = 0x10000;
    private const int SeekData = 3;
    private const int SeekHole = 4;

    /// <summary>Makes a create, rename or delete in <paramref name="directory"/> durable.</summary>
    public static void SyncDirectory(string directory)
    {
        var fd = Open(directory, ORdOnly | ODirectory);
        if (fd < 0)
        {
            throw Error($"cannot open directory {directory} to sync it");
        }

        try
        {
            if (Fsync(fd) != 0)
            {
                throw Error($"syncing directory {directory} failed");
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }

    /// <summary>Punches a hole (the file keeps its size); false when the file system cannot, with nothing done.</summary>
    public static bool TryPunchHole(SafeFileHandle handle, string path, long offset, long length)
    {
        if (Fallocate(handle, FallocFlPunchHole | FallocFlKeepSize, offset, length) == 0)
        {
            return true;
        }

        return Marshal.GetLastPInvokeError() == EOPNOTSUPP
            ? false
            : throw Error($"punching a hole of {length} bytes at {offset} in {path} failed");
    }

    /// <summary>The first offset at or after <paramref name="offset"/> that holds data, or -1 when only holes follow.</summary>
    public static long NextData(SafeFileHandle handle, long offset) => Seek(handle, offset, SeekData);

    /// <summary>The first hole at or after <paramref name="offset"/>; the end of the file counts as one.</summary>
    public static long NextHole(SafeFileHandle handle, long offset)
    {
        var hole = Seek(handle, offset, SeekHole);
        return hole < 0 ? RandomAccess.GetLength(handle) : hole;
    }

    /// <summary>Sends <paramref name="signal"/> to a process; false when it no longer exists.</summary>
    public static bool Signal(int pid, int signal) => Kill(pid, signal) == 0 || Marshal.GetLastPInvokeError() != ESRCH;

    /// <summary>True while the process exists (signal 0 checks without sending anything).</summary>
    public static bool IsAlive(int pid) => Signal(pid, 0);

    /// <summary>Gives <paramref name="path"/> to group <paramref name="groupId"/>, keeping its owner (<c>chown(path, -1, gid)</c>).</summary>
    public static void ChangeGroup(string path, int groupId)
    {
        if (Chown(path, uint.MaxValue, (uint)groupId) != 0)
        {
            throw Error($"cannot give {path} to group {groupId}");
        }
    }

    /// <summary>The id of the group named <paramref name="name"/> (from <c>/etc/group</c> or whatever NSS serves), or null when there is none.</summary>
    public static int? GroupId(string name)
    {
        // struct group { char *gr_name; char *gr_passwd; gid_t gr_gid; char **gr_mem; }: the id follows two pointers.
        var entry = GetGroupByName(name);
        return entry == IntPtr.Zero ? null : Marshal.ReadInt32(entry, 2 * IntPtr.Size);
    }

    /// <summary>An <see cref="IOException"/> for the last errno, with the errno as its HResult as .NET's own I/O errors have.</summary>
    private static IOException Error(string doing)
    {
        var errno = Marshal.GetLastPInvokeError();
        return new IOException($"{doing}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})", errno);
    }

    private static long Seek(SafeFileHandle handle, long offset, int whence)
    {
        var result = LSeek(handle, offset, whence);
        if (result >= 0)
        {
            return result;
        }

        return Marshal.GetLastPInvokeError() == ENXIO
            ? -1
            : throw Error($"lseek({offset}, {(whence == SeekData ? "SEEK_DATA" : "SEEK_HOLE")})");
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "fallocate", SetLastError = true)]
    private static partial int Fallocate(SafeFileHandle fd, int mode, long offset, long length);

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    private static partial long LSeek(SafeFileHandle fd, long offset, int whence);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "chown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Chown(string path, uint owner, uint group);

    [LibraryImport("libc", EntryPoint = "getgrnam", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr GetGroupByName(string name);
}

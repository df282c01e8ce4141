using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Replicator.Core.Storage;

/// <summary>The few libc calls .NET does not expose: hole punching, syncing a directory, signals.</summary>
internal static partial class Posix
{
    public const int FallocFlKeepSize = 0x01;
    public const int FallocFlPunchHole = 0x02;
    public const int EOPNOTSUPP = 95;
    public const int SigKill = 9;
    public const int SigTerm = 15;
    private const int ESRCH = 3;
    private const int ORdOnly = 0;
    private const int ODirectory = 0x10000;

    /// <summary>Makes a rename or create in <paramref name="directory"/> durable.</summary>
    public static void SyncDirectory(string directory)
    {
        var fd = Open(directory, ORdOnly | ODirectory);
        if (fd < 0)
        {
            throw new IOException($"cannot open directory {directory} to sync it: errno {Marshal.GetLastPInvokeError()}");
        }

        try
        {
            if (Fsync(fd) != 0)
            {
                throw new IOException($"syncing directory {directory} failed: errno {Marshal.GetLastPInvokeError()}");
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="path"/> atomically: temp file, fsync, rename, directory fsync.</summary>
    public static void WriteFileAtomically(string path, ReadOnlySpan<byte> bytes)
    {
        var temp = path + ".tmp";
        using (var handle = File.OpenHandle(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            RandomAccess.Write(handle, bytes, 0);
            RandomAccess.FlushToDisk(handle);
        }

        File.Move(temp, path, overwrite: true);
        SyncDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
    }

    /// <summary>Sends <paramref name="signal"/> to a process; false when it no longer exists.</summary>
    public static bool Signal(int pid, int signal) => Kill(pid, signal) == 0 || Marshal.GetLastPInvokeError() != ESRCH;

    /// <summary>True while the process exists (signal 0 checks without sending anything).</summary>
    public static bool IsAlive(int pid) => Signal(pid, 0);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "fallocate", SetLastError = true)]
    public static partial int Fallocate(SafeFileHandle fd, int mode, long offset, long length);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}

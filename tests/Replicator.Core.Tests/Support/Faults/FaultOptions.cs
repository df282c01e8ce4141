namespace Replicator.Core.Tests.Support.Faults;

/// <summary>What a simulated power loss does with a page written since its file's last flush.</summary>
public enum PowerLossMode
{
    /// <summary>Every such page is lost: the file holds exactly what was flushed.</summary>
    DropUnsynced,

    /// <summary>Each such 4 KiB page independently reached the disk or not, as writeback leaves it.</summary>
    RandomPages,

    /// <summary>Each 512-byte sector of each such page independently holds the old or the new bytes (a torn write).</summary>
    TornSectors,
}

/// <summary>Kinds of file-system calls a fault can be injected into.</summary>
[Flags]
internal enum IoOperation
{
    None = 0,

    /// <summary><see cref="Core.Storage.IStorageFile.Read"/>.</summary>
    Read = 1,

    /// <summary>Write, Discard and SetLength of a file.</summary>
    Write = 2,

    /// <summary><see cref="Core.Storage.IStorageFile.Flush"/> (fsync of a file).</summary>
    Flush = 4,

    /// <summary>Creating, renaming and deleting files, and syncing a directory.</summary>
    Directory = 8,

    All = Read | Write | Flush | Directory,
}

/// <summary>The errno values the file system's errors carry, as <see cref="IOException.HResult"/>.</summary>
internal static class Errno
{
    public const int EIO = 5;
    public const int ENOSPC = 28;
}

/// <summary>
/// Thrown by every call of a <see cref="FaultFileSystem"/> from the moment its power was cut until
/// <see cref="FaultFileSystem.PowerLoss"/> brings it back: the process is dead, so no engine code
/// may catch it as an I/O error and carry on.
/// </summary>
internal sealed class PowerCutException(string message) : Exception(message);

/// <summary>A change about to reach a file, for tests that look at the world at that moment.</summary>
internal readonly record struct FileChange(string Path, IoOperation Operation, long Offset, long Length);

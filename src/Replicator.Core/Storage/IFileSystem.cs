namespace Replicator.Core.Storage;

/// <summary>
/// The file system the engine keeps every file in: pool data files, the metadata journal and
/// snapshot, and each replica's bitmap, activity log and metadata. <see cref="PhysicalFileSystem"/>
/// is the node's disk; <see cref="MemoryFileSystem"/> holds everything in memory (benchmarks, tests);
/// the tests' fault-injecting file system drops what was not made durable and injects I/O errors.
/// </summary>
/// <remarks>
/// <para><b>Durability, as on Linux.</b> A write reaches the page cache: it survives a kill -9 of
/// the process but not a power loss until <see cref="IStorageFile.Flush"/> (fsync) of that file
/// returns. Creating, renaming or deleting a file changes its directory, which survives a power loss
/// only once <see cref="SyncDirectory"/> of that directory returns. <see cref="CreateDirectory"/> is
/// the exception: it returns with the new directories durable.</para>
/// <para><b>Errors</b> are <see cref="IOException"/>s whose <see cref="Exception.HResult"/> is the
/// errno (5 EIO, 28 ENOSPC), as .NET reports them; a missing file is a <see cref="FileNotFoundException"/>.</para>
/// <para><b>Privacy</b> (invariant 9): files are created readable and writable by the service's
/// user only (0600), directories 0700.</para>
/// <para>Paths are absolute or relative to the working directory, as for <see cref="File"/>.</para>
/// </remarks>
public interface IFileSystem
{
    bool FileExists(string path);

    /// <summary>Opens a file for reading and writing.</summary>
    /// <exception cref="FileNotFoundException"><see cref="FileOpenMode.Open"/> and the file does not exist.</exception>
    /// <exception cref="IOException"><see cref="FileOpenMode.CreateNew"/> and the file exists.</exception>
    IStorageFile OpenFile(string path, FileOpenMode mode);

    /// <summary>Removes the file's name; nothing happens when there is none.</summary>
    void DeleteFile(string path);

    /// <summary>Renames a file, atomically replacing <paramref name="destination"/> if it exists (rename(2)).</summary>
    void RenameFile(string source, string destination);

    /// <summary>The paths of the files in <paramref name="directory"/> whose names start with <paramref name="prefix"/>, in no particular order.</summary>
    IReadOnlyList<string> ListFiles(string directory, string prefix);

    /// <summary>Creates the directory and any missing parents (0700), durably: each new directory's parent is synced.</summary>
    void CreateDirectory(string path);

    /// <summary>Makes every creation, rename and deletion in <paramref name="path"/> so far durable (fsync of the directory).</summary>
    void SyncDirectory(string path);

    /// <summary>
    /// Takes an exclusive lock on <paramref name="path"/> (created if missing) for as long as the
    /// returned object is not disposed, so two processes never open the same pool or replica.
    /// </summary>
    /// <exception cref="IOException">Another holder has the lock.</exception>
    IDisposable LockFile(string path);
}

public enum FileOpenMode
{
    /// <summary>The file must exist.</summary>
    Open,

    /// <summary>The file must not exist; it is created empty (its directory entry is durable after <see cref="IFileSystem.SyncDirectory"/>).</summary>
    CreateNew,
}

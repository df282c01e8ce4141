using Microsoft.Extensions.Logging.Abstractions;
using Replicator.Core.Pool;
using Replicator.Core.Replication;
using Replicator.Core.Storage;

namespace Replicator.Core.Tests.Storage;

/// <summary>Invariant 9 on disk: what the engine creates is readable by the service's user only.</summary>
public sealed class PhysicalFileSystemTests : IDisposable
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode PrivateDirectory = Private | UnixFileMode.UserExecute;
    private static readonly IFileSystem Disk = PhysicalFileSystem.Instance;
    private readonly TempDirectory _dir = new();

    [Fact]
    public void Created_files_are_0600_and_directories_with_their_new_parents_0700()
    {
        var nested = Path.Combine(_dir.Path, "a", "b", "c");
        Disk.CreateDirectory(nested);
        using (Disk.OpenFile(Path.Combine(nested, "f"), FileOpenMode.CreateNew))
        {
        }

        using (Disk.LockFile(Path.Combine(nested, "lock")))
        {
        }

        Assert.Equal(PrivateDirectory, File.GetUnixFileMode(Path.Combine(_dir.Path, "a")));
        Assert.Equal(PrivateDirectory, File.GetUnixFileMode(Path.Combine(_dir.Path, "a", "b")));
        Assert.Equal(PrivateDirectory, File.GetUnixFileMode(nested));
        Assert.Equal(Private, File.GetUnixFileMode(Path.Combine(nested, "f")));
        Assert.Equal(Private, File.GetUnixFileMode(Path.Combine(nested, "lock")));
    }

    [Fact]
    public void An_atomic_write_is_private_from_its_temporary_file_on()
    {
        var path = _dir.File("state.json");
        var watching = new ModeAtRename(Disk);

        watching.WriteAtomically(path, "{}"u8);

        Assert.Equal(Private, watching.TemporaryMode);
        Assert.Equal(Private, File.GetUnixFileMode(path));
        Assert.Equal("{}", File.ReadAllText(path));
        Assert.False(File.Exists(path + FileSystemExtensions.TemporarySuffix));
    }

    [Fact]
    public void Every_file_and_directory_of_a_pool_and_a_replica_is_private()
    {
        var pool = Path.Combine(_dir.Path, "node", "pool");
        var replica = Path.Combine(_dir.Path, "node", "replicas", "v");
        using (var p = StoragePool.Create(Disk, pool, new PoolOptions { FileCapacity = 16L << 20 }, NullLogger.Instance))
        {
            p.CreateVolume("v", 1 << 20);
            using var r = ReplicaStore.Create(Disk, replica, Guid.NewGuid(), 1 << 20, GenerationIds.NewVolume, ReplicaDiskState.UpToDate, ReplicaFlags.None, NullLogger.Instance);
        }

        var entries = Directory.EnumerateFileSystemEntries(Path.Combine(_dir.Path, "node"), "*", SearchOption.AllDirectories).ToList();
        Assert.Contains(entries, e => e.EndsWith("data-000.img", StringComparison.Ordinal));
        Assert.Contains(entries, e => e.EndsWith(ReplicaStore.BitmapFileName, StringComparison.Ordinal));
        Assert.All(entries, e => Assert.Equal(Directory.Exists(e) ? PrivateDirectory : Private, File.GetUnixFileMode(e)));
    }

    [Fact]
    public void Errors_carry_the_errno_as_their_HResult()
    {
        var e = Assert.ThrowsAny<IOException>(() => Disk.SyncDirectory(_dir.File("missing")));
        Assert.Equal(2, e.HResult);
    }

    public void Dispose() => _dir.Dispose();

    /// <summary>Notes the mode of the file being renamed, at the moment of the rename.</summary>
    private sealed class ModeAtRename(IFileSystem inner) : IFileSystem
    {
        public UnixFileMode? TemporaryMode { get; private set; }

        public bool FileExists(string path) => inner.FileExists(path);

        public IStorageFile OpenFile(string path, FileOpenMode mode) => inner.OpenFile(path, mode);

        public void DeleteFile(string path) => inner.DeleteFile(path);

        public void RenameFile(string source, string destination)
        {
            TemporaryMode = File.GetUnixFileMode(source);
            inner.RenameFile(source, destination);
        }

        public IReadOnlyList<string> ListFiles(string directory, string prefix) => inner.ListFiles(directory, prefix);

        public void CreateDirectory(string path) => inner.CreateDirectory(path);

        public void SyncDirectory(string path) => inner.SyncDirectory(path);

        public IDisposable LockFile(string path) => inner.LockFile(path);
    }
}

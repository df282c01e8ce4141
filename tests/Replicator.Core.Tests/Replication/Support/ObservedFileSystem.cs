using Replicator.Core.Storage;

namespace Replicator.Core.Tests.Replication.Support;

/// <summary>A file system that lets a test look at the world at the moment a pool data file is about to change.</summary>
internal sealed class ObservedFileSystem(IFileSystem inner) : IFileSystem
{
    /// <summary>Called before every write and discard reaches a pool data file (<c>data-*.img</c>).</summary>
    public Action? Changing { get; set; }

    public bool FileExists(string path) => inner.FileExists(path);

    public IStorageFile OpenFile(string path, FileOpenMode mode)
    {
        var file = inner.OpenFile(path, mode);
        return Path.GetFileName(path).StartsWith("data-", StringComparison.Ordinal) ? new ObservedFile(this, file) : file;
    }

    public void DeleteFile(string path) => inner.DeleteFile(path);

    public void RenameFile(string source, string destination) => inner.RenameFile(source, destination);

    public IReadOnlyList<string> ListFiles(string directory, string prefix) => inner.ListFiles(directory, prefix);

    public void CreateDirectory(string path) => inner.CreateDirectory(path);

    public void SyncDirectory(string path) => inner.SyncDirectory(path);

    public IDisposable LockFile(string path) => inner.LockFile(path);

    private sealed class ObservedFile(ObservedFileSystem owner, IStorageFile file) : IStorageFile
    {
        public string Path => file.Path;

        public long Length => file.Length;

        public int Read(long offset, Span<byte> destination) => file.Read(offset, destination);

        public void Write(long offset, ReadOnlySpan<byte> source)
        {
            owner.Changing?.Invoke();
            file.Write(offset, source);
        }

        public void SetLength(long length) => file.SetLength(length);

        public void Flush() => file.Flush();

        public void Discard(long offset, long length)
        {
            owner.Changing?.Invoke();
            file.Discard(offset, length);
        }

        public long NextData(long offset) => file.NextData(offset);

        public long NextHole(long offset) => file.NextHole(offset);

        public void Dispose() => file.Dispose();
    }
}

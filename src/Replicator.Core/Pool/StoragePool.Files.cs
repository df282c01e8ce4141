using System.Globalization;
using Microsoft.Extensions.Logging;
using Replicator.Core.Metadata;
using Replicator.Core.Storage;

namespace Replicator.Core.Pool;

/// <summary>How a new pool is laid out.</summary>
public sealed record PoolOptions
{
    public const long DefaultFileCapacity = 64L << 30;
    public const int DefaultExtentSize = 64 << 10;

    /// <summary>Capacity of the first pool file (sparse: it takes disk space only as it is written).</summary>
    public long FileCapacity { get; init; } = DefaultFileCapacity;

    /// <summary>
    /// Allocation unit, 4 KiB to 16 MiB. 64 KiB (the LVM thin-pool default chunk) keeps the map at
    /// 64 bytes of metadata per MiB written while wasting at most 60 KiB on a small first write.
    /// </summary>
    public int ExtentSize { get; init; } = DefaultExtentSize;
}

public sealed partial class StoragePool
{
    private const string LockFileName = "pool.lock";

    /// <summary>True when <paramref name="directory"/> holds a pool.</summary>
    public static bool Exists(IFileSystem files, string directory) => PoolMetadataStore.Exists(files, directory);

    /// <summary>Creates a new pool in <paramref name="directory"/> (created if missing).</summary>
    public static StoragePool Create(IFileSystem files, string directory, PoolOptions options, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(files);
        if (options.FileCapacity <= 0 || options.FileCapacity % options.ExtentSize != 0)
        {
            throw new ArgumentException($"pool size {options.FileCapacity} must be a positive multiple of the extent size {options.ExtentSize}");
        }

        files.CreateDirectory(directory);
        var lockFile = TakeLock(files, directory);
        try
        {
            var data = CreateDataFile(files, directory, 0, options.FileCapacity);
            PoolMetadataStore meta;
            try
            {
                meta = PoolMetadataStore.Create(files, directory, options.ExtentSize, options.FileCapacity);
            }
            catch
            {
                data.Dispose();
                files.DeleteFile(DataFilePath(directory, 0));
                throw;
            }

            return new StoragePool(files, directory, meta, [data], lockFile, logger);
        }
        catch
        {
            lockFile.Dispose();
            throw;
        }
    }

    /// <summary>Opens the pool in <paramref name="directory"/>, replaying its journal.</summary>
    public static StoragePool Open(IFileSystem files, string directory, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(files);
        var lockFile = TakeLock(files, directory);
        var data = new List<IStorageFile>();
        try
        {
            var meta = PoolMetadataStore.Open(files, directory, logger);
            var capacities = meta.State.FileCapacities;
            for (var i = 0; i < capacities.Count; i++)
            {
                data.Add(OpenDataFile(files, DataFilePath(directory, i), capacities[i]));
            }

            // A file created by an AddFile whose record never reached the journal is not part of the pool.
            files.DeleteFile(DataFilePath(directory, capacities.Count));
            return new StoragePool(files, directory, meta, data, lockFile, logger);
        }
        catch
        {
            data.ForEach(s => s.Dispose());
            lockFile.Dispose();
            throw;
        }
    }

    /// <summary>Adds a pool file of <paramref name="capacity"/> bytes, online.</summary>
    public void AddFile(long capacity)
    {
        if (capacity <= 0 || capacity % ExtentSize != 0)
        {
            throw new ArgumentException($"a pool file's size must be a positive multiple of the extent size {ExtentSize}");
        }

        lock (_lock)
        {
            ThrowIfDisposed();
            var data = CreateDataFile(_files, _directory, _data.Count, capacity);
            _meta.Commit(JournalRecord.PoolFileAdded(capacity));
            _meta.Flush();
            _data.Add(data);
        }
    }

    private static IDisposable TakeLock(IFileSystem files, string directory)
    {
        try
        {
            return files.LockFile(Path.Combine(directory, LockFileName));
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            throw new IOException($"the pool in {directory} is in use by another process (is a node already running on it?)", e);
        }
    }

    private static string DataFilePath(string directory, int index) =>
        Path.Combine(directory, $"data-{index.ToString("D3", CultureInfo.InvariantCulture)}.img");

    /// <summary>Creates a sparse data file at its full capacity, so space is taken only as extents are written.</summary>
    private static IStorageFile CreateDataFile(IFileSystem files, string directory, int index, long capacity)
    {
        var path = DataFilePath(directory, index);
        var file = files.OpenFile(path, FileOpenMode.CreateNew);
        try
        {
            file.SetLength(capacity);
            file.Flush();
            files.SyncDirectory(directory);
            return file;
        }
        catch
        {
            file.Dispose();
            files.DeleteFile(path);
            throw;
        }
    }

    /// <summary>Opens a data file, which must be exactly <paramref name="expectedLength"/> bytes.</summary>
    private static IStorageFile OpenDataFile(IFileSystem files, string path, long expectedLength)
    {
        var file = files.OpenFile(path, FileOpenMode.Open);
        var length = file.Length;
        if (length != expectedLength)
        {
            file.Dispose();
            throw new InvalidDataException($"pool file {path} is {length} bytes, the pool metadata says {expectedLength}; refusing to use it");
        }

        return file;
    }
}

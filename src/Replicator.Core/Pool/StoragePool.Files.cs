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
    private FileStream? _lockFile;

    /// <summary>True when <paramref name="directory"/> holds a pool.</summary>
    public static bool ExistsOnDisk(string directory) => PoolMetadataStore.Exists(directory);

    /// <summary>Creates a new pool in <paramref name="directory"/> (created if missing).</summary>
    public static StoragePool CreateOnDisk(string directory, PoolOptions options, ILogger logger)
    {
        if (options.FileCapacity <= 0 || options.FileCapacity % options.ExtentSize != 0)
        {
            throw new ArgumentException($"pool size {options.FileCapacity} must be a positive multiple of the extent size {options.ExtentSize}");
        }

        Directory.CreateDirectory(directory);
        var lockFile = TakeLock(directory);
        try
        {
            var store = FileBackingStore.Create(DataFilePath(directory, 0), options.FileCapacity);
            PoolMetadataStore meta;
            try
            {
                meta = PoolMetadataStore.Create(directory, options.ExtentSize, options.FileCapacity);
            }
            catch
            {
                store.Dispose();
                File.Delete(DataFilePath(directory, 0));
                throw;
            }

            return new StoragePool(meta, [store], logger) { _lockFile = lockFile };
        }
        catch
        {
            lockFile.Dispose();
            throw;
        }
    }

    /// <summary>Opens the pool in <paramref name="directory"/>, replaying its journal.</summary>
    public static StoragePool OpenOnDisk(string directory, ILogger logger)
    {
        var lockFile = TakeLock(directory);
        var stores = new List<IBackingStore>();
        try
        {
            var meta = PoolMetadataStore.Open(directory, logger);
            var capacities = meta.State.FileCapacities;
            for (var i = 0; i < capacities.Count; i++)
            {
                stores.Add(FileBackingStore.Open(DataFilePath(directory, i), capacities[i]));
            }

            // A file created by an AddFile whose record never reached the journal is not part of the pool.
            File.Delete(DataFilePath(directory, capacities.Count));
            return new StoragePool(meta, stores, logger) { _lockFile = lockFile };
        }
        catch
        {
            stores.ForEach(s => s.Dispose());
            lockFile.Dispose();
            throw;
        }
    }

    /// <summary>Opens a pool whose metadata is in <paramref name="metadataDirectory"/> over the given stores (tests, benchmarks).</summary>
    internal static StoragePool OpenWithStores(string metadataDirectory, IReadOnlyList<IBackingStore> stores, int extentSize, ILogger logger)
    {
        var meta = PoolMetadataStore.Exists(metadataDirectory)
            ? PoolMetadataStore.Open(metadataDirectory, logger)
            : PoolMetadataStore.Create(metadataDirectory, extentSize, stores[0].Length);
        for (var i = meta.State.FileCapacities.Count; i < stores.Count; i++)
        {
            meta.Commit(JournalRecord.PoolFileAdded(stores[i].Length));
        }

        return new StoragePool(meta, stores, logger);
    }

    /// <summary>Adds a pool file of <paramref name="capacity"/> bytes, online.</summary>
    public void AddFileOnDisk(string directory, long capacity)
    {
        if (capacity <= 0 || capacity % ExtentSize != 0)
        {
            throw new ArgumentException($"a pool file's size must be a positive multiple of the extent size {ExtentSize}");
        }

        lock (_lock)
        {
            ThrowIfDisposed();
            var store = FileBackingStore.Create(DataFilePath(directory, _stores.Count), capacity);
            _meta.Commit(JournalRecord.PoolFileAdded(capacity));
            _meta.Flush();
            _stores.Add(store);
        }
    }

    private static string DataFilePath(string directory, int index) =>
        Path.Combine(directory, $"data-{index.ToString("D3", CultureInfo.InvariantCulture)}.img");

    private static FileStream TakeLock(string directory)
    {
        try
        {
            return new FileStream(Path.Combine(directory, LockFileName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw new IOException($"the pool in {directory} is in use by another process (is a node already running on it?)", e);
        }
    }
}

using System.Globalization;
using Microsoft.Extensions.Logging;
using Replicator.Core.Hashing;
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

    /// <summary>
    /// Store a checksum with every 4 KiB block and check it on every read (the default). Off only to
    /// measure what checksums cost: a pool without them cannot tell a bad block from a good one.
    /// </summary>
    public bool BlockChecksums { get; init; } = true;
}

public sealed partial class StoragePool
{
    private const string LockFileName = "pool.lock";

    /// <summary>Present while the pool keeps no block checksums (see <see cref="PoolOptions.BlockChecksums"/>).</summary>
    private const string NoChecksumsFileName = "NO-BLOCK-CHECKSUMS";
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
            BlockChecksumStore? checksums = null;
            try
            {
                if (options.BlockChecksums)
                {
                    checksums = CreateChecksumFile(directory, 0, options.FileCapacity);
                }
                else
                {
                    File.WriteAllText(Path.Combine(directory, NoChecksumsFileName), NoChecksumsText);
                }

                Posix.SyncDirectory(directory);
                meta = PoolMetadataStore.Create(directory, options.ExtentSize, options.FileCapacity);
            }
            catch
            {
                store.Dispose();
                checksums?.Dispose();
                File.Delete(DataFilePath(directory, 0));
                File.Delete(ChecksumFilePath(directory, 0));
                throw;
            }

            return new StoragePool(meta, [store], checksums is null ? null : [checksums], logger) { _lockFile = lockFile };
        }
        catch
        {
            lockFile.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens the pool in <paramref name="directory"/>, replaying its journal. With <paramref name="blockChecksums"/>
    /// a pool kept without checksums (or made before them) gets them first, computed from its data; without
    /// it a pool's checksum files are removed (see <see cref="PoolOptions.BlockChecksums"/>).
    /// </summary>
    public static StoragePool OpenOnDisk(string directory, ILogger logger, bool blockChecksums = true)
    {
        var lockFile = TakeLock(directory);
        var stores = new List<IBackingStore>();
        var checksums = new List<BlockChecksumStore>();
        PoolMetadataStore? meta = null;
        try
        {
            meta = PoolMetadataStore.Open(directory, logger);
            var capacities = meta.State.FileCapacities;
            for (var i = 0; i < capacities.Count; i++)
            {
                stores.Add(FileBackingStore.Open(DataFilePath(directory, i), capacities[i]));
            }

            // A file created by an AddFile whose record never reached the journal is not part of the pool.
            File.Delete(DataFilePath(directory, capacities.Count));
            File.Delete(ChecksumFilePath(directory, capacities.Count));
            var marker = Path.Combine(directory, NoChecksumsFileName);
            if (!blockChecksums)
            {
                TurnChecksumsOff(directory, capacities.Count, marker, logger);
                return new StoragePool(meta, stores, null, logger) { _lockFile = lockFile };
            }

            for (var i = 0; i < capacities.Count; i++)
            {
                checksums.Add(File.Exists(ChecksumFilePath(directory, i))
                    ? BlockChecksumStore.Load(FileBackingStore.Open(ChecksumFilePath(directory, i), BlockChecksumStore.FileLength(capacities[i])), capacities[i], ChecksumFilePath(directory, i))
                    : ComputeChecksumFile(directory, i, meta.State, stores[i], logger));
            }

            if (File.Exists(marker))
            {
                File.Delete(marker);
                Posix.SyncDirectory(directory);
            }

            return new StoragePool(meta, stores, checksums, logger) { _lockFile = lockFile };
        }
        catch
        {
            stores.ForEach(s => s.Dispose());
            checksums.ForEach(c => c.Dispose());
            meta?.Dispose();
            lockFile.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens a pool whose metadata is in <paramref name="metadataDirectory"/> over the given stores (tests, benchmarks).
    /// <paramref name="checksums"/> holds one store per data store, of <see cref="BlockChecksumStore.FileLength"/>, for
    /// a pool with block checksums: a new one when the pool is new, the same ones again to reopen it.
    /// </summary>
    internal static StoragePool OpenWithStores(string metadataDirectory, IReadOnlyList<IBackingStore> stores, int extentSize, ILogger logger,
        IReadOnlyList<IBackingStore>? checksums = null)
    {
        var exists = PoolMetadataStore.Exists(metadataDirectory);
        var meta = exists
            ? PoolMetadataStore.Open(metadataDirectory, logger)
            : PoolMetadataStore.Create(metadataDirectory, extentSize, stores[0].Length);
        for (var i = meta.State.FileCapacities.Count; i < stores.Count; i++)
        {
            meta.Commit(JournalRecord.PoolFileAdded(stores[i].Length));
        }

        var sums = checksums?.Select((store, i) => exists
            ? BlockChecksumStore.Load(store, stores[i].Length, $"checksum store {i}")
            : BlockChecksumStore.Initialize(store, stores[i].Length)).ToList();
        return new StoragePool(meta, stores, sums, logger);
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
            try
            {
                // The checksum file exists, durably, before the record that makes the data file part of the pool.
                _checksums?.Add(CreateChecksumFile(directory, _stores.Count, capacity));
                Posix.SyncDirectory(directory);
                _meta.Commit(JournalRecord.PoolFileAdded(capacity));
                _meta.Flush();
            }
            catch
            {
                if (_checksums is not null && _checksums.Count > _stores.Count)
                {
                    _checksums[^1].Dispose();
                    _checksums.RemoveAt(_checksums.Count - 1);
                }

                store.Dispose();
                throw;
            }

            _stores.Add(store);
        }
    }

    private const string NoChecksumsText =
        "This pool keeps no block checksums: it was made, or last opened, with \"blockChecksums\": false in node.json, an option for\n" +
        "measuring what checksums cost. Reads cannot tell a bad block from a good one. Opened with checksums on, the pool\n" +
        "computes them from its data first.\n";

    private static string DataFilePath(string directory, int index) =>
        Path.Combine(directory, $"data-{index.ToString("D3", CultureInfo.InvariantCulture)}.img");

    private static string ChecksumFilePath(string directory, int index) =>
        Path.Combine(directory, $"data-{index.ToString("D3", CultureInfo.InvariantCulture)}.sums");

    private static BlockChecksumStore CreateChecksumFile(string directory, int index, long dataCapacity)
    {
        var path = ChecksumFilePath(directory, index);
        File.Delete(path);
        return BlockChecksumStore.Initialize(FileBackingStore.Create(path, BlockChecksumStore.FileLength(dataCapacity)), dataCapacity);
    }

    /// <summary>
    /// Gives a data file that has none (a pool kept without checksums, or made before them) its checksum file,
    /// computed from the data of every mapped extent, into a temporary file renamed into place once it is durable.
    /// The data is taken as it is: nothing can vouch for it, which is why this is logged.
    /// </summary>
    private static BlockChecksumStore ComputeChecksumFile(string directory, int index, PoolState state, IBackingStore data, ILogger logger)
    {
        var path = ChecksumFilePath(directory, index);
        var temp = path + ".tmp";
        File.Delete(temp);
        var first = state.FileCapacities.Take(index).Sum() / state.ExtentSize;
        var count = state.FileCapacities[index] / state.ExtentSize;
        var block = new byte[BlockChecksum.BlockSize];
        var slot = new byte[BlockChecksum.Size];
        long computed = 0;
        using (var sums = BlockChecksumStore.Initialize(FileBackingStore.Create(temp, BlockChecksumStore.FileLength(data.Length)), data.Length))
        {
            for (var extent = 0L; extent < count; extent++)
            {
                if (!state.Used[first + extent])
                {
                    continue;
                }

                for (var within = 0L; within < state.ExtentSize; within += BlockChecksum.BlockSize)
                {
                    var offset = (extent * state.ExtentSize) + within;
                    data.Read(offset, block);
                    if (block.AsSpan().ContainsAnyExcept((byte)0))
                    {
                        BlockChecksum.Set(slot, 0, BlockChecksum.Of(block));
                        sums.Write(offset >> BlockChecksum.BlockShift, slot);
                        computed++;
                    }
                }
            }

            sums.Flush();
        }

        File.Move(temp, path);
        Posix.SyncDirectory(directory);
        logger.LogWarning("Pool file {Index} had no block checksums; computed them from its data ({Blocks} blocks of 4 KiB hold data). Blocks damaged before now cannot be told apart.",
            index, computed);
        return BlockChecksumStore.Load(FileBackingStore.Open(path, BlockChecksumStore.FileLength(data.Length)), data.Length, path);
    }

    /// <summary>Removes the checksum files and leaves the marker, durably, before the pool serves without checksums.</summary>
    private static void TurnChecksumsOff(string directory, int files, string marker, ILogger logger)
    {
        if (!File.Exists(marker))
        {
            File.WriteAllText(marker, NoChecksumsText);
        }

        var removed = 0;
        for (var i = 0; i < files; i++)
        {
            if (File.Exists(ChecksumFilePath(directory, i)))
            {
                File.Delete(ChecksumFilePath(directory, i));
                removed++;
            }
        }

        Posix.SyncDirectory(directory);
        logger.LogCritical("BLOCK CHECKSUMS ARE OFF for the pool in {Directory} (a measurement option){Removed}: reads cannot detect a bad block, and nothing repairs one.",
            directory, removed > 0 ? $"; removed {removed} checksum file(s)" : "");
    }

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

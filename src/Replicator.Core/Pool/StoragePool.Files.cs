using System.Globalization;
using System.Text;
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

    private const string NoChecksumsText =
        "This pool keeps no block checksums: it was made, or last opened, with \"blockChecksums\": false in node.json, an option for\n" +
        "measuring what checksums cost. Reads cannot tell a bad block from a good one. Opened with checksums on, the pool\n" +
        "computes them from its data first.\n";

    /// <summary>True when <paramref name="directory"/> holds a pool.</summary>
    public static bool Exists(IFileSystem files, string directory) => PoolMetadataStore.Exists(files, directory);

    /// <summary>
    /// Creates a new pool in <paramref name="directory"/> (created if missing). The snapshot is written
    /// last and is what makes the pool exist (<see cref="Exists"/>): data files and journals without it
    /// are left from a creation a crash cut short, and are replaced.
    /// </summary>
    /// <exception cref="IOException">A pool already exists there, or is in use.</exception>
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
            if (Exists(files, directory))
            {
                throw new IOException($"a pool already exists in {directory}");
            }

            foreach (var leftover in files.ListFiles(directory, "data-").Concat(files.ListFiles(directory, PoolMetadataStore.JournalPrefix)))
            {
                files.DeleteFile(leftover);
            }

            files.DeleteFile(Path.Combine(directory, NoChecksumsFileName));
            var data = CreateDataFile(files, directory, 0, options.FileCapacity);
            PoolMetadataStore meta;
            BlockChecksumStore? checksums = null;
            try
            {
                if (options.BlockChecksums)
                {
                    checksums = CreateChecksumFile(files, directory, 0, options.FileCapacity);
                }
                else
                {
                    files.WriteAtomically(Path.Combine(directory, NoChecksumsFileName), Encoding.UTF8.GetBytes(NoChecksumsText));
                }

                files.SyncDirectory(directory);
                meta = PoolMetadataStore.Create(files, directory, options.ExtentSize, options.FileCapacity);
            }
            catch
            {
                data.Dispose();
                checksums?.Dispose();
                files.DeleteFile(DataFilePath(directory, 0));
                files.DeleteFile(ChecksumFilePath(directory, 0));
                throw;
            }

            return new StoragePool(files, directory, meta, [data], checksums is null ? null : [checksums], lockFile, logger);
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
    public static StoragePool Open(IFileSystem files, string directory, ILogger logger, bool blockChecksums = true)
    {
        ArgumentNullException.ThrowIfNull(files);
        var lockFile = TakeLock(files, directory);
        var data = new List<IStorageFile>();
        var checksums = new List<BlockChecksumStore>();
        PoolMetadataStore? meta = null;
        try
        {
            meta = PoolMetadataStore.Open(files, directory, logger);
            var capacities = meta.State.FileCapacities;
            for (var i = 0; i < capacities.Count; i++)
            {
                data.Add(OpenDataFile(files, DataFilePath(directory, i), capacities[i]));
            }

            // A file created by an AddFile whose record never reached the journal is not part of the pool.
            files.DeleteFile(DataFilePath(directory, capacities.Count));
            files.DeleteFile(ChecksumFilePath(directory, capacities.Count));
            var marker = Path.Combine(directory, NoChecksumsFileName);
            if (!blockChecksums)
            {
                TurnChecksumsOff(files, directory, capacities.Count, marker, logger);
                return new StoragePool(files, directory, meta, data, null, lockFile, logger);
            }

            for (var i = 0; i < capacities.Count; i++)
            {
                checksums.Add(files.FileExists(ChecksumFilePath(directory, i))
                    ? OpenChecksumFile(files, ChecksumFilePath(directory, i), capacities[i])
                    : ComputeChecksumFile(files, directory, i, meta.State, data[i], logger));
            }

            if (files.FileExists(marker))
            {
                files.DeleteFile(marker);
                files.SyncDirectory(directory);
            }

            return new StoragePool(files, directory, meta, data, checksums, lockFile, logger);
        }
        catch
        {
            data.ForEach(s => s.Dispose());
            checksums.ForEach(c => c.Dispose());
            meta?.Dispose();
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
            try
            {
                // The checksum file exists, durably, before the record that makes the data file part of the pool.
                if (_checksums is not null)
                {
                    _checksums.Add(CreateChecksumFile(_files, _directory, _data.Count, capacity));
                    _files.SyncDirectory(_directory);
                }

                _meta.Commit(JournalRecord.PoolFileAdded(capacity));
                _meta.Flush();
            }
            catch
            {
                if (_checksums is not null && _checksums.Count > _data.Count)
                {
                    _checksums[^1].Dispose();
                    _checksums.RemoveAt(_checksums.Count - 1);
                }

                data.Dispose();
                throw;
            }

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

    private static string ChecksumFilePath(string directory, int index) =>
        Path.Combine(directory, $"data-{index.ToString("D3", CultureInfo.InvariantCulture)}.sums");

    /// <summary>Creates the checksum file of a data file of <paramref name="dataCapacity"/> bytes at <paramref name="path"/>, every slot unwritten, its header durable.</summary>
    private static BlockChecksumStore CreateChecksumStore(IFileSystem files, string path, long dataCapacity)
    {
        files.DeleteFile(path);
        var file = files.OpenFile(path, FileOpenMode.CreateNew);
        try
        {
            file.SetLength(BlockChecksumStore.FileLength(dataCapacity));
            return BlockChecksumStore.Initialize(file, dataCapacity);
        }
        catch
        {
            file.Dispose();
            files.DeleteFile(path);
            throw;
        }
    }

    /// <summary>The checksum file of data file <paramref name="index"/>; its directory entry is durable after the caller syncs the directory.</summary>
    private static BlockChecksumStore CreateChecksumFile(IFileSystem files, string directory, int index, long dataCapacity) =>
        CreateChecksumStore(files, ChecksumFilePath(directory, index), dataCapacity);

    private static BlockChecksumStore OpenChecksumFile(IFileSystem files, string path, long dataCapacity)
    {
        var file = files.OpenFile(path, FileOpenMode.Open);
        try
        {
            return BlockChecksumStore.Load(file, dataCapacity, path);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Gives a data file that has none (a pool kept without checksums, or made before them) its checksum file,
    /// computed from the data of every mapped extent, into a temporary file renamed into place once it is durable.
    /// The data is taken as it is: nothing can vouch for it, which is why this is logged.
    /// </summary>
    private static BlockChecksumStore ComputeChecksumFile(IFileSystem files, string directory, int index, PoolState state, IStorageFile data, ILogger logger)
    {
        var path = ChecksumFilePath(directory, index);
        var temp = path + FileSystemExtensions.TemporarySuffix;
        var capacity = state.FileCapacities[index];
        var first = state.FileCapacities.Take(index).Sum() / state.ExtentSize;
        var count = capacity / state.ExtentSize;
        var block = new byte[BlockChecksum.BlockSize];
        var slot = new byte[BlockChecksum.Size];
        long computed = 0;
        using (var sums = CreateChecksumStore(files, temp, capacity))
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

        files.ReplaceWithTemporary(path);
        LogChecksumsComputed(logger, index, computed);
        return OpenChecksumFile(files, path, capacity);
    }

    /// <summary>Removes the checksum files and leaves the marker, durably, before the pool serves without checksums.</summary>
    private static void TurnChecksumsOff(IFileSystem files, string directory, int count, string marker, ILogger logger)
    {
        if (!files.FileExists(marker))
        {
            files.WriteAtomically(marker, Encoding.UTF8.GetBytes(NoChecksumsText));
        }

        var removed = 0;
        for (var i = 0; i < count; i++)
        {
            if (files.FileExists(ChecksumFilePath(directory, i)))
            {
                files.DeleteFile(ChecksumFilePath(directory, i));
                removed++;
            }
        }

        files.SyncDirectory(directory);
        LogChecksumsOff(logger, directory, removed > 0 ? $"; removed {removed} checksum file(s)" : "");
    }

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Pool file {Index} had no block checksums; computed them from its data ({Blocks} blocks of 4 KiB hold data). Blocks damaged before now cannot be told apart.")]
    private static partial void LogChecksumsComputed(ILogger logger, int index, long blocks);

    [LoggerMessage(Level = LogLevel.Critical,
        Message = "BLOCK CHECKSUMS ARE OFF for the pool in {Directory} (a measurement option){Removed}: reads cannot detect a bad block, and nothing repairs one.")]
    private static partial void LogChecksumsOff(ILogger logger, string directory, string removed);

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

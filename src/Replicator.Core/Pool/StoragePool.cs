using Microsoft.Extensions.Logging;
using Replicator.Core.Devices;
using Replicator.Core.Hashing;
using Replicator.Core.Metadata;
using Replicator.Core.Storage;
using Replicator.Core.Volumes;

namespace Replicator.Core.Pool;

/// <summary>
/// The node's storage pool: data files cut into fixed-size extents, shared by every volume,
/// and the metadata that says which volume unit lives in which extent.
/// </summary>
/// <remarks>
/// <para><b>Concurrency.</b> One lock (<see cref="_lock"/>) guards the metadata (maps, allocation,
/// journal appends); data is read and written outside it. An I/O looks up its extents and pins them
/// under the lock, moves data without it, then unpins. An extent unmapped (trim, delete) while
/// pinned is not reused until the last pin goes, so a slow write can never land in an extent that
/// another volume has since been given.</para>
/// <para><b>Block checksums</b> (unless the pool was made without them, a measurement option):
/// every data file has a checksum file beside it (<see cref="BlockChecksumStore"/>); the volume's data
/// path stores and checks them (see <see cref="ThinVolume"/>), <see cref="Guard"/> orders the few
/// accesses that need it. Freeing an extent clears its checksums with its data.</para>
/// <para><b>Crash safety.</b> A new mapping is appended to the journal (one pwrite, so it survives a
/// kill -9) before the data is written and before any write to that unit is acknowledged. A freed
/// extent is punched (reads as zeros) and then quarantined until a flush has made both the punch and
/// the unmap record durable; only then can it be handed out again. So after any crash a unit maps
/// either to its own data or to zeros, never to another volume's old data. At open, every extent no
/// map references is punched, which covers data written to extents whose mapping never reached the
/// journal.</para>
/// <para><b>A failed fsync of a data file</b> breaks the punch's promise: see
/// <c>StoragePool.FailedSync.cs</c> for how such extents are zeroed before they are handed out.</para>
/// </remarks>
public sealed partial class StoragePool : IDisposable
{
    /// <summary>Journal size at which the pool writes a snapshot and starts a new journal.</summary>
    public const long DefaultCheckpointThreshold = 64L << 20;

    private readonly Lock _lock = new();
    private readonly Lock _flushLock = new();
    private readonly IFileSystem _files;
    private readonly string _directory;
    private readonly IDisposable _lockFile;
    private readonly PoolMetadataStore _meta;
    private readonly List<IStorageFile> _data;
    private readonly List<BlockChecksumStore>? _checksums;
    private readonly Dictionary<uint, ThinVolume> _volumes = [];
    private readonly Dictionary<long, int> _pins = [];
    private readonly HashSet<long> _unusable = [];
    private readonly HashSet<long> _releaseWhenUnpinned = [];
    private readonly List<long> _quarantine = [];
    private readonly ILogger _logger;
    private long _cursor;
    private bool _disposed;
    private long _checkpointThreshold = DefaultCheckpointThreshold;
    private long _nextCheckpointAt = DefaultCheckpointThreshold;

    private StoragePool(IFileSystem files, string directory, PoolMetadataStore meta, List<IStorageFile> data, List<BlockChecksumStore>? checksums,
        IDisposable lockFile, ILogger logger)
    {
        _files = files;
        _directory = directory;
        _meta = meta;
        _data = data;
        _checksums = checksums;
        _lockFile = lockFile;
        _logger = logger;
        var state = meta.State;
        if (_checksums is not null && (_checksums.Count != _data.Count || _checksums.Where((c, i) => c.DataCapacity != state.FileCapacities[i]).Any()))
        {
            throw new InvalidDataException("a pool file has no block checksum file of its size");
        }

        foreach (var volume in state.Volumes)
        {
            _volumes[volume.LocalId] = new ThinVolume(this, volume);
        }

        DiscardUnreferencedExtents();
    }

    public int ExtentSize => _meta.State.ExtentSize;

    /// <summary>Whether every block is stored with its checksum (off only in a pool made for a reference measurement).</summary>
    public bool BlockChecksums => _checksums is not null;

    /// <summary>Orders block writes against the confirmation and repair of damaged blocks (see <see cref="BlockGuard"/>).</summary>
    internal BlockGuard Guard { get; } = new();

    /// <summary>Journal size at which the pool checkpoints (tests lower it to checkpoint often).</summary>
    internal long CheckpointThreshold
    {
        get => _checkpointThreshold;
        set => _checkpointThreshold = _nextCheckpointAt = value;
    }

    public IReadOnlyCollection<ThinVolume> Volumes
    {
        get
        {
            lock (_lock)
            {
                return _volumes.Values.ToList();
            }
        }
    }

    public PoolUsage Usage
    {
        get
        {
            lock (_lock)
            {
                var state = _meta.State;
                var capacity = state.ExtentCount * ExtentSize;
                var allocated = state.Used.SetCount * ExtentSize;
                return new PoolUsage(
                    Capacity: capacity,
                    Virtual: state.Volumes.Sum(v => v.Size),
                    Allocated: allocated,
                    Free: capacity - allocated - ((long)_unusable.Count * ExtentSize),
                    Volumes: state.Volumes.Count);
            }
        }
    }

    public ThinVolume? Find(string name)
    {
        lock (_lock)
        {
            return _meta.State.Find(name) is { } v ? _volumes[v.LocalId] : null;
        }
    }

    public ThinVolume? Find(Guid id)
    {
        lock (_lock)
        {
            return _meta.State.Find(id) is { } v ? _volumes[v.LocalId] : null;
        }
    }

    /// <summary>Creates an empty volume. <paramref name="id"/> is given when the volume already exists on the peer.</summary>
    public ThinVolume CreateVolume(string name, long size, Guid? id = null)
    {
        VolumeNames.Validate(name);
        ValidateSize(size);
        lock (_lock)
        {
            ThrowIfDisposed();
            if (_meta.State.Find(name) is not null)
            {
                throw new VolumeExistsException($"a volume named '{name}' already exists");
            }

            var volumeId = id ?? Guid.NewGuid();
            if (_meta.State.Find(volumeId) is not null)
            {
                throw new VolumeExistsException($"a volume with id {volumeId} already exists");
            }

            // Committed, the volume exists: a failed flush after it reports the error but leaves the pool consistent.
            var localId = _meta.State.NextLocalId;
            _meta.Commit(JournalRecord.VolumeCreated(localId, volumeId, name, size));
            var volume = new ThinVolume(this, _meta.State.Get(localId));
            _volumes[localId] = volume;
            _meta.Flush();
            return volume;
        }
    }

    /// <summary>Grows a volume. Shrinking is refused: it would silently cut data off.</summary>
    public void ResizeVolume(ThinVolume volume, long size)
    {
        ValidateSize(size);
        lock (_lock)
        {
            ThrowIfDisposed();
            var state = volume.State;
            if (size < state.Size)
            {
                throw new ArgumentOutOfRangeException(nameof(size), size, $"volume '{state.Name}' is {state.Size} bytes; shrinking is not supported");
            }

            if (size != state.Size)
            {
                _meta.Commit(JournalRecord.VolumeResized(state.LocalId, size));
                _meta.Flush();
            }
        }
    }

    /// <summary>Deletes a volume and frees its extents.</summary>
    public void DeleteVolume(ThinVolume volume)
    {
        List<long> discard;
        lock (_lock)
        {
            ThrowIfDisposed();
            var state = volume.State;
            if (!_volumes.ContainsKey(state.LocalId))
            {
                throw new InvalidOperationException($"volume '{state.Name}' is already deleted");
            }

            // Committed first: when the journal refuses the records, the volume is still there, whole.
            var records = state.Map.Entries().Select(e => JournalRecord.UnitUnmapped(state.LocalId, e.Unit)).ToList();
            var extents = state.Map.Entries().Select(e => e.Extent).ToList();
            records.Add(JournalRecord.VolumeDeleted(state.LocalId));
            _meta.Commit(records.ToArray());
            _volumes.Remove(state.LocalId);
            volume.MarkDeleted();
            discard = RetireLocked(extents);
            MaybeCheckpointLocked();
        }

        // The deletion is durable before its extents are punched: a volume that a power loss brought back would
        // find blocks punched under checksums that still name their old data, outside any activity log's reach.
        try
        {
            lock (_lock)
            {
                _meta.Flush();
            }
        }
        finally
        {
            DiscardAndQuarantine(discard);
        }

        Flush();
    }

    /// <summary>Makes everything written, trimmed and mapped so far durable, and lets freed extents be reused.</summary>
    public void Flush()
    {
        // Flushes run one at a time: each releases exactly the quarantined extents it saw before syncing,
        // and the extents whose zeros it wrote (StoragePool.FailedSync.cs).
        lock (_flushLock)
        {
            int releasable;
            List<long> zeroing;
            long[] punched;
            lock (_lock)
            {
                ThrowIfDisposed();
                releasable = _quarantine.Count;
                zeroing = [.. _needZeros];
                punched = [.. _punchedUnsynced];
            }

            // Data, then checksums, then the journal: a mapping is durable only with what it maps.
            var zeroed = SyncData(zeroing, punched);
            _checksums?.ForEach(c => c.Flush());
            lock (_lock)
            {
                _meta.Flush();
                for (var i = 0; i < releasable; i++)
                {
                    _unusable.Remove(_quarantine[i]);
                }

                _quarantine.RemoveRange(0, releasable);
                ReleaseZeroedLocked(zeroed);
            }
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            try
            {
                // The next process cannot know which free extents lost their punch: they get their zeros now.
                SyncData([.. _needZeros], [.. _punchedUnsynced]);
                _checksums?.ForEach(c => c.Flush());
                _meta.Flush();
                _meta.Checkpoint();
            }
            finally
            {
                _meta.Dispose();
                foreach (var file in _data)
                {
                    file.Dispose();
                }

                _checksums?.ForEach(c => c.Dispose());
                Guard.Dispose();
                _lockFile.Dispose();
            }
        }
    }

    internal static void ValidateSize(long size)
    {
        if (size <= 0 || size % VolumeNames.SizeAlignment != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, $"a volume size must be a positive multiple of {VolumeNames.SizeAlignment} bytes");
        }
    }

    private void ThrowIfDisposed()
    {
        if (_disposed)
        {
            throw new BlockDeviceException(StorageError.Shutdown, "the storage pool is closed");
        }
    }

    /// <summary>
    /// Checkpoints when the journal has grown past the threshold. The change that got it there is
    /// committed already, so a failed checkpoint does not fail it: the journal grows on, and the
    /// next try comes after another threshold's worth of records.
    /// </summary>
    private void MaybeCheckpointLocked()
    {
        if (_meta.JournalLength < _nextCheckpointAt)
        {
            return;
        }

        try
        {
            _meta.Checkpoint();
            _nextCheckpointAt = CheckpointThreshold;
        }
        catch (IOException e)
        {
            _nextCheckpointAt = _meta.JournalLength + CheckpointThreshold;
            LogCheckpointFailed(_logger, e.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "A checkpoint of the pool's metadata failed ({Reason}); the journal grows until the next one works")]
    private static partial void LogCheckpointFailed(ILogger logger, string reason);

    /// <summary>Punches every extent no volume maps, so none can leak old data into a new mapping.</summary>
    private void DiscardUnreferencedExtents()
    {
        foreach (var (first, count) in _meta.State.Used.ClearRuns())
        {
            for (long extent = first; extent < first + count;)
            {
                var (file, offset) = Locate(extent);
                var inFile = (_meta.State.FileCapacities[file] - offset) / ExtentSize;
                var run = Math.Min(count - (extent - first), inFile);
                _data[file].Discard(offset, run * ExtentSize);
                _checksums?[file].Clear(offset >> BlockChecksum.BlockShift, (run * ExtentSize) >> BlockChecksum.BlockShift);
                extent += run;
            }
        }

        foreach (var file in _data)
        {
            file.Flush();
        }

        _checksums?.ForEach(c => c.Flush());
    }
}

/// <summary>Pool space in bytes: <see cref="Virtual"/> is the sum of volume sizes (thin, so it may exceed capacity).</summary>
public readonly record struct PoolUsage(long Capacity, long Virtual, long Allocated, long Free, int Volumes);

public sealed class VolumeExistsException(string message) : InvalidOperationException(message);

using Microsoft.Extensions.Logging;
using Replicator.Core.Devices;
using Replicator.Core.Storage;

namespace Replicator.Core.Replication;

/// <summary>
/// Everything a node keeps about its replica of one volume, in <c>replicas/&lt;volume id&gt;/</c>:
/// the metadata (generation ids, disk state, flags), the out-of-sync bitmap and the activity log.
/// Thread-safe: it serializes the pure structures under one lock and does their I/O.
/// </summary>
/// <remarks>
/// The bitmap is symmetric: a set bit means "this region may differ between the replicas". On
/// an up-to-date replica that is a region the peer lacks; on one that is not (a resync target,
/// or a replica whose disk refused a write) it is a region this replica lacks, and reads of it go
/// to the peer. The activity log runs for every write, connected or not: after a crash (or power
/// loss, which can drop bitmap marks still in the page cache) its extents are marked again at
/// start. A clean close empties it, so a clean start marks nothing.
/// </remarks>
internal sealed partial class ReplicaStore : IDisposable
{
    public const string MetadataFileName = "replica.meta";
    public const string BitmapFileName = "out-of-sync.bitmap";
    public const string ActivityLogFileName = "activity.log";

    private readonly Lock _lock = new();
    private readonly IFileSystem _files;
    private readonly string _directory;
    private readonly DirtyBitmap _bitmap;

    /// <summary>
    /// The marked regions that may well hold the same data on both replicas: those an activity log named after a
    /// crash, and those only the peer's bitmap marked, until this replica marks them itself. A resync after a crash
    /// compares their checksums before it sends them; a region this replica marked because it changed without its peer
    /// differs for certain and is sent straight away. In memory only: after a restart the bitmap's marks count as
    /// certain, which costs bytes, not data.
    /// </summary>
    private readonly DirtyBitmap _mayMatch;
    private readonly BitmapFile _bitmapFile;
    private readonly ActivityLog _activity;
    private readonly ActivityLogFile _activityFile;
    private readonly SemaphoreSlim _activityWriter = new(1, 1);
    private readonly List<BitmapWord> _changed = [];
    private readonly ILogger _logger;
    private ReplicaMetadata _metadata;
    private TaskCompletionSource _activityFreed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    /// <summary>Writes that ended so far (the activity log's stamps), and how many of them are known durable.</summary>
    private long _endedWrites;

    /// <summary>Resync ranges the target confirmed but has not yet made durable, and those a flush of the target is covering now.</summary>
    private readonly List<(long Offset, long Length)> _sent = [];
    private readonly List<(long Offset, long Length)> _flushingSent = [];
    private long _durableStamp;
    private bool _degradedSinceConnect;
    private GenerationIds? _pendingAlone;

    private ReplicaStore(IFileSystem files, string directory, ReplicaMetadata metadata, DirtyBitmap bitmap, DirtyBitmap mayMatch, BitmapFile bitmapFile,
        ActivityLog activity, ActivityLogFile activityFile, bool crashed, ILogger logger)
    {
        _files = files;
        _directory = directory;
        _metadata = metadata;
        _bitmap = bitmap;
        _mayMatch = mayMatch;
        _bitmapFile = bitmapFile;
        _activity = activity;
        _activityFile = activityFile;
        Crashed = crashed;
        _logger = logger;
        _detached = metadata.DiskState == ReplicaDiskState.Diskless;
    }

    public ReplicaStatus Status
    {
        get
        {
            lock (_lock)
            {
                return _metadata.Status;
            }
        }
    }

    public GenerationIds Generation => Status.Ids;

    public ReplicaDiskState DiskState => Status.Disk;

    public bool IsUpToDate => DiskState == ReplicaDiskState.UpToDate;

    /// <summary>The node found this replica's activity log non-empty at start: it died with writes possibly in flight.</summary>
    public bool Crashed { get; }

    /// <summary>After a crash, the volume ranges of the activity log's extents: every write that may not have been durable lies in them.</summary>
    public IReadOnlyList<(long Offset, long Length)> CrashRanges { get; private init; } = [];

    public Guid PeerNodeId
    {
        get
        {
            lock (_lock)
            {
                return _metadata.PeerNodeId;
            }
        }
    }

    public long OutOfSyncBytes
    {
        get
        {
            lock (_lock)
            {
                return _bitmap.DirtyBytes;
            }
        }
    }

    public int Granularity => _bitmap.Granularity;

    /// <summary>
    /// Runs before every write of the activity log that may drop extents from it: whatever must reach the page cache
    /// before an extent stops being named there (the volume's block checksums) goes now.
    /// </summary>
    public Action? BeforeActivityLogWrite { get; set; }

    /// <summary>The directory of this replica's files (<c>replicas/&lt;volume id&gt;/</c>).</summary>
    public string Directory => _directory;

    /// <summary>The file system this replica's files are kept in (the volume's other state files go there too).</summary>
    public IFileSystem Files => _files;

    /// <summary>Out-of-sync bytes the resync has sent and the target confirmed, waiting for the target's next flush to clear.</summary>
    public long SentAwaitingFlushBytes
    {
        get
        {
            lock (_lock)
            {
                return _sent.Sum(r => r.Length) + _flushingSent.Sum(r => r.Length);
            }
        }
    }

    /// <summary>
    /// Creates the replica files for a volume that has none yet. The metadata file is written last and
    /// is what makes the replica exist (<see cref="Exists"/>): a bitmap or activity log without it is
    /// left from a creation a crash cut short, and is replaced.
    /// </summary>
    /// <exception cref="IOException">The replica already exists.</exception>
    public static ReplicaStore Create(IFileSystem files, string directory, Guid volumeId, long volumeSize, GenerationIds ids, ReplicaDiskState disk, ReplicaFlags flags, ILogger logger) =>
        Create(files, directory, ReplicaMetadata.ForNewVolume(volumeId, Guid.Empty) with { Generation = ids, DiskState = disk, Flags = flags }, volumeSize, logger);

    /// <summary>Creates the replica files with the geometry (bitmap granularity, activity log) <paramref name="metadata"/> names.</summary>
    public static ReplicaStore Create(IFileSystem files, string directory, ReplicaMetadata metadata, long volumeSize, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        if (Exists(files, directory))
        {
            throw new IOException($"a replica already exists in {directory}");
        }

        files.CreateDirectory(directory);
        files.DeleteFile(Path.Combine(directory, BitmapFileName));
        files.DeleteFile(Path.Combine(directory, ActivityLogFileName));
        var bitmapFile = BitmapFile.Create(files, Path.Combine(directory, BitmapFileName), volumeSize, metadata.BitmapGranularity);
        ActivityLogFile.Create(files, Path.Combine(directory, ActivityLogFileName), metadata.ActivityLogSlots, metadata.ActivityLogExtentSize);
        var activityFile = ActivityLogFile.Open(files, Path.Combine(directory, ActivityLogFileName), out _);
        ReplicaMetadataFile.Write(files, Path.Combine(directory, MetadataFileName), metadata);
        return new ReplicaStore(files, directory, metadata, new DirtyBitmap(volumeSize, metadata.BitmapGranularity),
            new DirtyBitmap(volumeSize, metadata.BitmapGranularity), bitmapFile,
            new ActivityLog(metadata.ActivityLogSlots, metadata.ActivityLogExtentSize), activityFile, crashed: false, logger);
    }

    public static bool Exists(IFileSystem files, string directory) => files.FileExists(Path.Combine(directory, MetadataFileName));

    /// <summary>
    /// Opens the replica at start: a non-empty activity log (a crash) is marked into the bitmap and
    /// flushed before anything else; a damaged bitmap is replaced by an empty one and a full sync is required.
    /// </summary>
    public static ReplicaStore Open(IFileSystem files, string directory, long volumeSize, ILogger logger)
    {
        var metadata = ReplicaMetadataFile.Read(files, Path.Combine(directory, MetadataFileName));
        var bitmapPath = Path.Combine(directory, BitmapFileName);
        BitmapFile bitmapFile;
        DirtyBitmap bitmap;
        try
        {
            bitmapFile = BitmapFile.Open(files, bitmapPath, out bitmap);
            if (bitmap.VolumeSize < volumeSize)
            {
                bitmap.Grow(volumeSize);
                bitmapFile.Grow(volumeSize);
            }
        }
        catch (Exception e) when (e is InvalidDataException or FileNotFoundException)
        {
            LogBitmapLost(logger, metadata.VolumeId, e.Message);
            files.DeleteFile(bitmapPath);
            bitmapFile = BitmapFile.Create(files, bitmapPath, volumeSize, metadata.BitmapGranularity);
            bitmap = new DirtyBitmap(volumeSize, metadata.BitmapGranularity);
            metadata = metadata with { Flags = metadata.Flags | ReplicaFlags.FullSyncRequired };
        }

        var activityFile = ActivityLogFile.Open(files, Path.Combine(directory, ActivityLogFileName), out var loaded);
        var crashed = loaded.Extents.Count > 0;
        var activity = ActivityLog.Restore(loaded, metadata.ActivityLogSlots, metadata.ActivityLogExtentSize);
        var mayMatch = new DirtyBitmap(bitmap.VolumeSize, bitmap.Granularity);
        var crashRanges = new List<(long, long)>();
        if (crashed)
        {
            var recovered = new DirtyBitmap(bitmap.VolumeSize, bitmap.Granularity);
            foreach (var extent in loaded.Extents)
            {
                var (offset, length) = activity.ExtentRange(extent);
                if (offset < volumeSize)
                {
                    recovered.Mark(offset, Math.Min(length, volumeSize - offset), null);
                    crashRanges.Add((offset, Math.Min(length, volumeSize - offset)));
                }
            }

            bitmap.UnionWith(recovered, null, mayMatch);
            bitmapFile.WriteAll(bitmap);
            bitmapFile.Flush();
            LogCrashRecovered(logger, metadata.VolumeId, loaded.Extents.Count, bitmap.DirtyBytes);
        }

        metadata = metadata.AfterRestart(out _);
        ReplicaMetadataFile.Write(files, Path.Combine(directory, MetadataFileName), metadata);
        return new ReplicaStore(files, directory, metadata, bitmap, mayMatch, bitmapFile, activity, activityFile, crashed, logger) { CrashRanges = crashRanges };
    }

    /// <summary>Whether this replica lacks data in the range (it is not up to date there) and must read it from the peer.</summary>
    public bool LacksData(long offset, long length)
    {
        lock (_lock)
        {
            return _metadata.DiskState != ReplicaDiskState.UpToDate && length > 0 && _bitmap.IsDirty(offset, length);
        }
    }

    /// <summary>Whether the bitmap marks any of the range (on an up-to-date replica: the peer may lack it).</summary>
    public bool IsMarked(long offset, long length)
    {
        lock (_lock)
        {
            return length > 0 && _bitmap.IsDirty(offset, length);
        }
    }

    /// <summary>
    /// The generation this replica moves to when it acknowledges changes its peer lacks: its current
    /// one when it already writes alone, else a fresh one — the same value until it is committed
    /// by <see cref="MarkOutOfSync"/> or the replica reconnects, so a quorum can be told before.
    /// </summary>
    public GenerationIds GenerationForWritingAlone()
    {
        lock (_lock)
        {
            return _degradedSinceConnect || _metadata.Generation.Bitmap != 0
                ? _metadata.Generation
                : _pendingAlone ??= _metadata.Generation.BeginDegradedWrites(GenerationIds.NewId);
        }
    }

    /// <summary>
    /// Records that the range may differ on the peer, durably enough for a kill -9, before the
    /// change is acknowledged. With <paramref name="writingAlone"/> (from <see cref="GenerationForWritingAlone"/>)
    /// this replica is about to acknowledge a change its peer does not have: it first moves to that
    /// generation, written durably, if it has not already.
    /// </summary>
    /// <exception cref="BlockDeviceException">The metadata or the bitmap could not be written (EIO, ENOSPC): the change must not go on.</exception>
    public void MarkOutOfSync(long offset, long length, GenerationIds? writingAlone = null)
    {
        try
        {
            MarkOutOfSyncCore(offset, length, writingAlone);
        }
        catch (IOException e)
        {
            throw BlockDeviceException.FromIOException(e, $"marking [{offset}, +{length}) out of sync in the bitmap of volume {_metadata.VolumeId}");
        }
    }

    private void MarkOutOfSyncCore(long offset, long length, GenerationIds? writingAlone)
    {
        lock (_lock)
        {
            if (writingAlone is { } ids && ids != _metadata.Generation && _metadata.DiskState == ReplicaDiskState.UpToDate)
            {
                WriteMetadataLocked(_metadata with { Generation = ids, Flags = _metadata.Flags & ~ReplicaFlags.ConnectedAndUpToDate });
                _pendingAlone = null;
            }

            if (writingAlone is not null)
            {
                _degradedSinceConnect = true;
            }

            if (_bitmap.Mark(offset, length, _changed) > 0)
            {
                try
                {
                    PersistLocked(() => _bitmapFile.WriteWords(_changed), "out-of-sync bitmap");
                }
                finally
                {
                    _changed.Clear();
                }
            }

            // Resync data sent for this range is older than this change: it must not clear the mark.
            ForgetSentLocked(offset, length);

            // This replica now holds a change its peer may lack: the range differs for certain.
            if (_mayMatch.DirtyRegions > 0 && length > 0)
            {
                var first = offset >> _bitmap.GranularityShift;
                _mayMatch.ClearRegions(first, ((offset + length - 1) >> _bitmap.GranularityShift) - first + 1, null);
            }
        }
    }

    /// <summary>A change the peer sent arrived here: on a replica that lacks data, the regions it wholly covers are now in sync.</summary>
    public void NoteInSync(long offset, long length)
    {
        lock (_lock)
        {
            if (_metadata.DiskState != ReplicaDiskState.UpToDate)
            {
                ClearCoveredLocked(offset, length);
            }
        }
    }

    /// <summary>
    /// The resync sent the range (or found it equal) and the target confirmed it: its regions may be
    /// cleared once the target has made them durable. Until then they stay marked, so a power loss on
    /// the target leaves them to resend (see <see cref="BeginFlushOfSent"/>).
    /// </summary>
    public void NoteSent(long offset, long length)
    {
        lock (_lock)
        {
            _sent.Add((offset, length));
        }
    }

    /// <summary>The resync is about to flush the target: the ranges sent so far are what that flush makes durable.</summary>
    public void BeginFlushOfSent()
    {
        lock (_lock)
        {
            _flushingSent.AddRange(_sent);
            _sent.Clear();
        }
    }

    /// <summary>The target's flush returned: the ranges it covered, and that nothing marked again since, are in sync.</summary>
    public void CompleteFlushOfSent()
    {
        lock (_lock)
        {
            foreach (var (offset, length) in _flushingSent)
            {
                ClearCoveredLocked(offset, length);
            }

            _flushingSent.Clear();
        }
    }

    /// <summary>
    /// The next run of out-of-sync regions at or after <paramref name="from"/>, at most <paramref name="maxBytes"/> long,
    /// whose regions all may match the peer's or all differ for certain (see <see cref="OutOfSyncRun.MayMatch"/>).
    /// </summary>
    public OutOfSyncRun? NextOutOfSyncRun(long from, int maxBytes)
    {
        lock (_lock)
        {
            var region = _bitmap.NextDirty(from >> _bitmap.GranularityShift);
            if (region < 0)
            {
                return null;
            }

            var maxRegions = Math.Max(1, maxBytes >> _bitmap.GranularityShift);
            var mayMatch = _mayMatch.IsRegionDirty(region);
            var end = region + 1;
            while (end < _bitmap.RegionCount && end - region < maxRegions && _bitmap.IsRegionDirty(end) && _mayMatch.IsRegionDirty(end) == mayMatch)
            {
                end++;
            }

            var (offset, _) = _bitmap.RegionRange(region);
            var (lastOffset, lastLength) = _bitmap.RegionRange(end - 1);
            return new OutOfSyncRun(offset, lastOffset + lastLength - offset, mayMatch);
        }
    }

    /// <summary>
    /// The flush of the data this replica's bitmap and activity log describe (the local volume's, which
    /// syncs the pool). The replicated volume sets it; until then there is no data to flush.
    /// </summary>
    public Func<CancellationToken, ValueTask> FlushData { private get; set; } = _ => ValueTask.CompletedTask;

    /// <summary>
    /// Makes every write ended so far durable against power loss, data and bitmap marks alike (a client
    /// FLUSH, and before the activity log lets an extent go). A failure leaves the durable point where it was.
    /// </summary>
    /// <exception cref="BlockDeviceException">The data or the bitmap could not be synced.</exception>
    public async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        long stamp;
        lock (_lock)
        {
            stamp = _endedWrites;
        }

        await FlushData(cancellationToken);
        lock (_lock)
        {
            PersistLocked(_bitmapFile.Flush, "out-of-sync bitmap");
            _durableStamp = Math.Max(_durableStamp, stamp);
        }
    }

    public void Dispose()
    {
        _bitmapFile.Dispose();
        _activityFile.Dispose();
        _activityWriter.Dispose();
    }

    private void ClearCoveredLocked(long offset, long length)
    {
        var granularity = _bitmap.Granularity;
        var first = (offset + granularity - 1) >> _bitmap.GranularityShift;
        var end = offset + length >= _bitmap.VolumeSize
            ? _bitmap.RegionCount
            : (offset + length) >> _bitmap.GranularityShift;
        if (end <= first)
        {
            return;
        }

        _mayMatch.ClearRegions(first, end - first, null);
        if (_bitmap.ClearRegions(first, end - first, _changed) > 0)
        {
            try
            {
                PersistLocked(() => _bitmapFile.WriteWords(_changed), "out-of-sync bitmap");
            }
            finally
            {
                _changed.Clear();
            }
        }
    }

    private void ForgetSentLocked(long offset, long length)
    {
        var end = offset + length;
        _sent.RemoveAll(r => r.Offset < end && offset < r.Offset + r.Length);
        _flushingSent.RemoveAll(r => r.Offset < end && offset < r.Offset + r.Length);
    }

    private void WriteMetadataLocked(ReplicaMetadata metadata)
    {
        PersistLocked(() => ReplicaMetadataFile.Write(_files, Path.Combine(_directory, MetadataFileName), metadata), "replica metadata");
        _metadata = metadata;
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Volume {Volume}: the out-of-sync bitmap is lost or damaged ({Reason}); the next resync will be a full one")]
    private static partial void LogBitmapLost(ILogger logger, Guid volume, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Volume}: this node stopped uncleanly; the {Extents} extents of its activity log ({Bytes} bytes) are marked for resync")]
    private static partial void LogCrashRecovered(ILogger logger, Guid volume, int extents, long bytes);
}

/// <summary>
/// A run of out-of-sync regions. <see cref="MayMatch"/>: the peer may well hold the same data (the regions came from an
/// activity log after a crash, or from the peer's bitmap), so a resync after a crash compares checksums before sending;
/// otherwise this replica changed them without its peer and they are sent as they are.
/// </summary>
internal readonly record struct OutOfSyncRun(long Offset, long Length, bool MayMatch);

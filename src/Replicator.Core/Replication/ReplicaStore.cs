using Microsoft.Extensions.Logging;

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
    private bool _degradedSinceConnect;
    private GenerationIds? _pendingAlone;

    private ReplicaStore(string directory, ReplicaMetadata metadata, DirtyBitmap bitmap, DirtyBitmap mayMatch, BitmapFile bitmapFile,
        ActivityLog activity, ActivityLogFile activityFile, bool crashed, ILogger logger)
    {
        _directory = directory;
        _metadata = metadata;
        _bitmap = bitmap;
        _mayMatch = mayMatch;
        _bitmapFile = bitmapFile;
        _activity = activity;
        _activityFile = activityFile;
        Crashed = crashed;
        _logger = logger;
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

    /// <summary>Creates the replica files for a volume that has none yet.</summary>
    public static ReplicaStore Create(string directory, Guid volumeId, long volumeSize, GenerationIds ids, ReplicaDiskState disk, ReplicaFlags flags, ILogger logger)
    {
        System.IO.Directory.CreateDirectory(directory);
        var metadata = ReplicaMetadata.ForNewVolume(volumeId, Guid.Empty) with { Generation = ids, DiskState = disk, Flags = flags };
        var bitmapFile = BitmapFile.Create(Path.Combine(directory, BitmapFileName), volumeSize, metadata.BitmapGranularity);
        ActivityLogFile.Create(Path.Combine(directory, ActivityLogFileName), metadata.ActivityLogSlots, metadata.ActivityLogExtentSize);
        var activityFile = ActivityLogFile.Open(Path.Combine(directory, ActivityLogFileName), out _);
        ReplicaMetadataFile.Write(Path.Combine(directory, MetadataFileName), metadata);
        return new ReplicaStore(directory, metadata, new DirtyBitmap(volumeSize, metadata.BitmapGranularity),
            new DirtyBitmap(volumeSize, metadata.BitmapGranularity), bitmapFile,
            new ActivityLog(metadata.ActivityLogSlots, metadata.ActivityLogExtentSize), activityFile, crashed: false, logger);
    }

    public static bool Exists(string directory) => File.Exists(Path.Combine(directory, MetadataFileName));

    /// <summary>
    /// Opens the replica at start: a non-empty activity log (a crash) is marked into the bitmap and
    /// flushed before anything else; a damaged bitmap is replaced by an empty one and a full sync is required.
    /// </summary>
    public static ReplicaStore Open(string directory, long volumeSize, ILogger logger)
    {
        var metadata = ReplicaMetadataFile.Read(Path.Combine(directory, MetadataFileName));
        var bitmapPath = Path.Combine(directory, BitmapFileName);
        BitmapFile bitmapFile;
        DirtyBitmap bitmap;
        try
        {
            bitmapFile = BitmapFile.Open(bitmapPath, out bitmap);
            if (bitmap.VolumeSize < volumeSize)
            {
                bitmap.Grow(volumeSize);
                bitmapFile.Grow(volumeSize);
            }
        }
        catch (Exception e) when (e is InvalidDataException or FileNotFoundException)
        {
            LogBitmapLost(logger, metadata.VolumeId, e.Message);
            File.Delete(bitmapPath);
            bitmapFile = BitmapFile.Create(bitmapPath, volumeSize, metadata.BitmapGranularity);
            bitmap = new DirtyBitmap(volumeSize, metadata.BitmapGranularity);
            metadata = metadata with { Flags = metadata.Flags | ReplicaFlags.FullSyncRequired };
        }

        var activityFile = ActivityLogFile.Open(Path.Combine(directory, ActivityLogFileName), out var loaded);
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
        ReplicaMetadataFile.Write(Path.Combine(directory, MetadataFileName), metadata);
        return new ReplicaStore(directory, metadata, bitmap, mayMatch, bitmapFile, activity, activityFile, crashed, logger) { CrashRanges = crashRanges };
    }

    /// <summary>Whether this replica lacks data in the range (it is not up to date there) and must read it from the peer.</summary>
    public bool LacksData(long offset, long length)
    {
        lock (_lock)
        {
            return _metadata.DiskState != ReplicaDiskState.UpToDate && length > 0 && _bitmap.IsDirty(offset, length);
        }
    }

    /// <summary>Whether the range may differ between the replicas (its regions are marked): the peer's copy of it is not known to be current.</summary>
    public bool MayDiffer(long offset, long length)
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
    public void MarkOutOfSync(long offset, long length, GenerationIds? writingAlone = null)
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
                _bitmapFile.WriteWords(_changed);
                _changed.Clear();
            }

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

    /// <summary>The peer confirmed it holds the range: the regions it wholly covers are in sync.</summary>
    public void ClearOutOfSync(long offset, long length)
    {
        lock (_lock)
        {
            ClearCoveredLocked(offset, length);
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

    /// <summary>Makes bitmap marks durable against power loss (with a client FLUSH).</summary>
    public void Flush() => _bitmapFile.Flush();

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
            _bitmapFile.WriteWords(_changed);
            _changed.Clear();
        }
    }

    private void WriteMetadataLocked(ReplicaMetadata metadata)
    {
        ReplicaMetadataFile.Write(Path.Combine(_directory, MetadataFileName), metadata);
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

using Microsoft.Extensions.Logging;
using Replicator.Core.Hashing;

namespace Replicator.Core.Pool;

/// <summary>The sync of the data files, and what the pool does when one fails.</summary>
/// <remarks>
/// <para><b>The rule.</b> A free extent is handed out only once it reads as zeros on the disk, not
/// only in the page cache: the pool punches it and releases it after a sync (see the class remarks).
/// A failed fsync breaks that. Linux forgets what it covered: a punch made before it may never reach
/// the disk, the next fsync succeeds without it, and punching the same range again changes nothing,
/// since the page cache holds a hole there already. After a power loss the extent would show its old
/// data (another volume's, or another place's) to whichever volume got it next.</para>
/// <para><b>What the pool does.</b> It remembers every extent punched, whole or in part, since the
/// last data sync that succeeded (<see cref="_punchedUnsynced"/>). When a sync fails, those become
/// suspect (<see cref="_suspect"/>). A suspect extent, once freed, is not released by the next flush:
/// it waits in <see cref="_needZeros"/> until a flush has written zeros over it (real writes, which
/// the fsync after them does carry) and synced them; then it is punched again for the space (a punch
/// lost now leaves zeros) and released. A close does the same before its last sync. Not covered: a
/// kill -9 between the failed fsync and the next flush or close, since the next process cannot tell
/// those extents from any other free one.</para>
/// <para><b>Concurrency.</b> The three sets are guarded by <see cref="_lock"/>. The zeros are written
/// and synced outside it, under <see cref="_flushLock"/>, while the extents are unusable, so no I/O
/// reaches them meanwhile.</para>
/// </remarks>
public sealed partial class StoragePool
{
    /// <summary>Extents punched (whole or in part) since the last data sync that succeeded.</summary>
    private readonly HashSet<long> _punchedUnsynced = [];

    /// <summary>Extents punched before a data sync that failed: the disk may hold their old data where the page cache holds a hole.</summary>
    private readonly HashSet<long> _suspect = [];

    /// <summary>Freed suspect extents: out of circulation until zeros written over them are synced.</summary>
    private readonly List<long> _needZeros = [];

    /// <summary>Extents written since the last data sync that succeeded: a failed sync may have dropped what was written.</summary>
    private readonly HashSet<long> _writtenUnsynced = [];

    /// <summary>Notes a write into <paramref name="extent"/>, made before this call.</summary>
    private void Written(long extent)
    {
        lock (_lock)
        {
            _writtenUnsynced.Add(extent);
        }
    }

    /// <summary>Notes a punch in <paramref name="extent"/>, made before this call. Under the lock.</summary>
    private void Punched(long extent) => _punchedUnsynced.Add(extent);

    /// <summary>
    /// Writes zeros over <paramref name="zeroing"/>, then syncs every data file. On success the punches
    /// in <paramref name="punched"/> (all made before the call) are durable, and so are the zeros of the
    /// extents returned, which are punched again for the space and may then be released. On failure every
    /// extent punched since the last successful sync becomes suspect, and the error propagates.
    /// </summary>
    private List<long> SyncData(List<long> zeroing, long[] punched)
    {
        var zeroed = TryWriteZeros(zeroing);
        long[] written;
        lock (_lock)
        {
            written = [.. _writtenUnsynced];
        }

        try
        {
            foreach (var file in _data)
            {
                file.Flush();
            }
        }
        catch (IOException)
        {
            List<long> changed;
            lock (_lock)
            {
                changed = [.. _writtenUnsynced.Union(_punchedUnsynced).Where(e => _meta.State.Used[e] && !_unusable.Contains(e))];
                _writtenUnsynced.Clear();
                DataSyncFailedLocked();
            }

            MarkSyncLost(changed);
            throw;
        }

        foreach (var extent in zeroed)
        {
            var (file, offset) = Locate(extent);
            _data[file].Discard(offset, ExtentSize);
        }

        lock (_lock)
        {
            _punchedUnsynced.ExceptWith(punched);
            _writtenUnsynced.ExceptWith(written);
        }

        return zeroed;
    }

    /// <summary>Every extent punched since the last good sync is suspect; the quarantined ones among them now need zeros.</summary>
    private void DataSyncFailedLocked()
    {
        _suspect.UnionWith(_punchedUnsynced);
        _punchedUnsynced.Clear();
        for (var i = _quarantine.Count - 1; i >= 0; i--)
        {
            if (_suspect.Contains(_quarantine[i]))
            {
                _needZeros.Add(_quarantine[i]);
                _quarantine.RemoveAt(i);
            }
        }
    }

    /// <summary>Releases extents whose zeros a sync made durable. Under the lock.</summary>
    private void ReleaseZeroedLocked(List<long> zeroed)
    {
        foreach (var extent in zeroed)
        {
            _needZeros.Remove(extent);
            _suspect.Remove(extent);
            _unusable.Remove(extent);
        }
    }

    /// <summary>
    /// Writes zeros over whole extents that are out of circulation; returns those written. One the disk
    /// refuses (full, failing) stays for the next try: the flush it serves does not depend on it.
    /// </summary>
    private List<long> TryWriteZeros(List<long> extents)
    {
        var written = new List<long>(extents.Count);
        if (extents.Count == 0)
        {
            return written;
        }

        var zeros = new byte[Math.Min(ExtentSize, 1 << 20)];
        foreach (var extent in extents)
        {
            try
            {
                for (var within = 0L; within < ExtentSize; within += zeros.Length)
                {
                    WriteData(extent, within, zeros.AsSpan(0, (int)Math.Min(zeros.Length, ExtentSize - within)));
                }

                written.Add(extent);
            }
            catch (IOException e)
            {
                LogZerosRefused(_logger, extent, e.Message);
            }
        }

        return written;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Writing zeros over free extent {Extent}, whose punch a failed fsync may have lost, failed ({Reason}); it stays out of use until a later flush manages")]
    private static partial void LogZerosRefused(ILogger logger, long extent, string reason);
}

/// <summary>A store of blocks that failed part-way.</summary>
public sealed partial class StoragePool
{
    /// <summary>
    /// Marks whole blocks <see cref="BlockChecksum.Unverified"/> after a store of them failed part-way. The rule: a write,
    /// zero or trim stores the blocks' data, then their checksums (<c>ThinVolume</c>); when either fails (EIO, or ENOSPC
    /// after a short write: the file system wrote what fit), the blocks may hold their old data, the new, or part of each,
    /// under the old checksum or the new. The change was not acknowledged, so each of those is data the client may see and
    /// none may fail its check: the blocks are marked as blocks a crash may have torn are (<c>ThinVolume.RecheckAfterCrash</c>),
    /// and the next read settles them as they are or, on a paired node, takes the peer's copy. The caller holds the blocks'
    /// stripes of <see cref="Guard"/>, so no read confirms a block between the failure and the mark. The mark is in memory
    /// and reaches the file with the next write-back; a crash before that leaves the blocks to the check after the crash
    /// (their extent is still in the activity log). Only when the mark itself fails do the blocks fail their check:
    /// reported as damage, never served as something else. A repair does not mark: the block it failed to rewrite was
    /// damaged already.
    /// </summary>
    internal void MarkUnverified(long extent, long within, long length)
    {
        var slots = new byte[BlockChecksum.BytesFor((int)length)];
        for (var b = 0; b < slots.Length / BlockChecksum.Size; b++)
        {
            BlockChecksum.Set(slots, b, BlockChecksum.Unverified);
        }

        try
        {
            WriteChecksums(extent, within, slots);
        }
        catch (IOException e)
        {
            LogMarkUnverifiedFailed(_logger, extent, within, length, e.Message);
        }
    }

    /// <summary>
    /// A data sync failed: Linux may have dropped any page written or punched since the last sync that succeeded, and the
    /// next sync succeeds without them, while the checksums of those blocks (synced by a later flush) name the new data.
    /// After a power loss such a block would hold its old data under its new checksum: a false alarm on data the client
    /// may well have, since no flush vouched for it. So every block of the mapped extents changed since that sync which
    /// passes its check now is marked <see cref="BlockChecksum.Unverified"/>, and the marks are made durable at once:
    /// whatever survives there passes (settled on its next read, see <c>ThinVolume.SettleBlock</c>, which writes the data
    /// again so a later sync carries it). A block failing its check already stays so: it was damaged before.
    /// </summary>
    private void MarkSyncLost(List<long> extents)
    {
        if (_checksums is null || extents.Count == 0)
        {
            return;
        }

        var block = new byte[BlockChecksum.BlockSize];
        var slot = new byte[BlockChecksum.Size];
        var unverified = new byte[BlockChecksum.Size];
        BlockChecksum.Set(unverified, 0, BlockChecksum.Unverified);
        try
        {
            foreach (var extent in extents)
            {
                for (var within = 0L; within < ExtentSize; within += BlockChecksum.BlockSize)
                {
                    using (Guard.EnterExclusive(PoolBlock(extent, within)))
                    {
                        ReadData(extent, within, block);
                        ReadChecksums(extent, within, slot);
                        if (BlockChecksum.Check(block, BlockChecksum.Get(slot, 0), out _) == BlockStatus.Good)
                        {
                            WriteChecksums(extent, within, unverified);
                        }
                    }
                }
            }

            _checksums.ForEach(c => c.Flush());
        }
        catch (IOException e)
        {
            LogSyncLostMarkFailed(_logger, extents.Count, e.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "A data sync failed, and marking the blocks of the {Extents} extents changed since the last good one unverified failed too ({Reason}): after a power loss some may be reported as damaged")]
    private static partial void LogSyncLostMarkFailed(ILogger logger, int extents, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "A store into extent {Extent} at {Within} (+{Length}) failed part-way, and marking its blocks unverified failed too ({Reason}): they will be reported as damaged")]
    private static partial void LogMarkUnverifiedFailed(ILogger logger, long extent, long within, long length, string reason);
}

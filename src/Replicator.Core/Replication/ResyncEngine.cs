using System.Buffers;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Replicator.Core.Devices;
using Replicator.Core.Hashing;
using Replicator.Core.Volumes;

namespace Replicator.Core.Replication;

internal enum ResyncState
{
    Idle,
    Running,
    Paused,
}

/// <summary>Where a resync stands: what the admin API, the CLI and the status page show.</summary>
internal readonly record struct ResyncProgress(
    ResyncState State,
    SyncRole Role,
    long TotalBytes,
    long DoneBytes,
    long RemainingBytes,
    double BytesPerSecond,
    TimeSpan? Eta,
    long SentBytes,
    int Completed);

/// <summary>
/// The resync source's side of a resync: walks the out-of-sync bitmap and sends each dirty run
/// to the peer — its data, or a trim where this replica has a hole, so thin stays thin — under
/// the same range lock that orders foreground writes, so resync data never overwrites a newer
/// write. Bits are cleared only once the peer has the data durably: a run the peer confirmed is
/// noted as sent, and its bits clear after the next flush of the peer (at the end of each pass
/// over the bitmap, and every <see cref="FlushEveryBytes"/> or <see cref="FlushEveryInterval"/>), so a kill -9 or a power loss of
/// either side resumes from what the bitmap still says. The target makes the data durable again
/// before it takes the source's generation ids at the end.
/// </summary>
/// <remarks>
/// <para><b>Rate.</b> A fixed cap (bytes per second, 0 = none) and an adaptive controller in the
/// spirit of DRBD's c-plan-ahead: while foreground I/O is active, the engine spends at most
/// <see cref="ForegroundShare"/> of its time resyncing and leaves the rest to the clients; on an
/// idle volume it runs flat out.</para>
/// </remarks>
internal sealed partial class ResyncEngine
{
    /// <summary>Largest run sent in one message.</summary>
    public const int ChunkBytes = 1 << 20;

    /// <summary>
    /// Runs in flight at once. One at a time leaves the link and the peer's disk idle for a round trip
    /// after every run (about a third of what foreground writes at a queue depth of 8 reach); several
    /// keep both busy. Each run holds only its own range of the write order.
    /// </summary>
    public const int RunsInFlight = 8;

    /// <summary>
    /// Data sent between two flushes of the target within a pass: what a power loss of the target
    /// makes the resync send again, traded against an fsync of the target's pool.
    /// </summary>
    public const long FlushEveryBytes = 256L << 20;

    /// <summary>
    /// The longest a confirmed run waits for the target's flush within a pass, so a slow (rate-limited or
    /// yielding) resync still clears its bits as it goes: its progress shows, and a kill resends little.
    /// </summary>
    public static readonly TimeSpan FlushEveryInterval = TimeSpan.FromSeconds(1);

    private readonly ReplicatedVolume _volume;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly SemaphoreSlim _kick = new(0, 1);
    private CancellationTokenSource? _stop;
    private Task _run = Task.CompletedTask;
    private TaskCompletionSource _resumed = CreateResumed(resumed: true);
    private long _total;
    private long _sent;
    private long _covered;
    private long _compared;
    private volatile bool _checksumPass;
    private double _rate;
    private int _completed;
    private int _failuresInARow;
    private volatile bool _running;

    internal ResyncEngine(ReplicatedVolume volume, ILogger logger)
    {
        _volume = volume;
        _logger = logger;
    }

    /// <summary>Resync bytes per second allowed; 0 means no fixed cap.</summary>
    public long RateLimit { get; set; }

    /// <summary>Whether the adaptive controller yields to foreground I/O.</summary>
    public bool Adaptive { get; set; } = true;

    /// <summary>Fraction of time the resync may take while clients are writing.</summary>
    public double ForegroundShare { get; set; } = 0.5;

    public bool IsPaused => !_resumed.Task.IsCompleted;

    /// <summary>Whether every resync from this node compares region checksums first and sends only what differs.</summary>
    public bool ChecksumFirst { get; set; }

    /// <summary>Data bytes sent by resyncs since this node started (ranges that are holes travel as trims and are not counted).</summary>
    public long SentBytes => Interlocked.Read(ref _sent);

    /// <summary>Bytes of volume brought in sync by resyncs since this node started, whether sent, trimmed or found equal.</summary>
    public long CoveredBytes => Interlocked.Read(ref _covered);

    /// <summary>Bytes compared by checksum before sending.</summary>
    public long ComparedBytes => Interlocked.Read(ref _compared);

    public ResyncProgress Progress
    {
        get
        {
            var role = _volume.Session?.Role ?? SyncRole.None;
            var remaining = Math.Max(0, _volume.Replica.OutOfSyncBytes - _volume.Replica.SentAwaitingFlushBytes);
            var total = Math.Max(Interlocked.Read(ref _total), remaining);
            var active = _running || role != SyncRole.None;
            var state = !active ? ResyncState.Idle : IsPaused ? ResyncState.Paused : ResyncState.Running;
            var rate = Volatile.Read(ref _rate);
            TimeSpan? eta = rate > 0 && remaining > 0 ? TimeSpan.FromSeconds(remaining / rate) : remaining == 0 ? TimeSpan.Zero : null;
            return new ResyncProgress(state, role, total, total - remaining, remaining, rate, eta, SentBytes, Volatile.Read(ref _completed));
        }
    }

    public void Pause()
    {
        lock (_lock)
        {
            if (_resumed.Task.IsCompleted)
            {
                _resumed = CreateResumed(resumed: false);
                LogPaused(_volume.Name);
            }
        }
    }

    public void Resume()
    {
        lock (_lock)
        {
            if (_resumed.TrySetResult())
            {
                LogResumed(_volume.Name);
            }
        }
    }

    internal void Start(ReplicationSession session)
    {
        lock (_lock)
        {
            _stop = new CancellationTokenSource();
            Interlocked.Exchange(ref _total, _volume.Replica.OutOfSyncBytes);
            var token = _stop.Token;
            _run = Task.Run(() => RunAsync(session, token), CancellationToken.None);
        }
    }

    internal async Task StopAsync()
    {
        CancellationTokenSource? stop;
        Task run;
        lock (_lock)
        {
            stop = _stop;
            run = _run;
            _stop = null;
        }

        if (stop is not null)
        {
            await stop.CancelAsync();
            await run;
            stop.Dispose();
        }
    }

    /// <summary>
    /// Starts a checksum-based resync of the whole volume from this node (the owner): every region
    /// is compared and only those that differ are sent. Repairs replicas that drifted apart below
    /// the replication (a bad disk sector, a corrupted file).
    /// </summary>
    internal void StartChecksumPass()
    {
        _checksumPass = true;
        _volume.Replica.MarkForFullSync([(0, _volume.Size)]);
        Interlocked.Exchange(ref _total, _volume.Replica.OutOfSyncBytes);
        Kick();
    }

    /// <summary>New regions were marked while connected (a write the peer refused): look again.</summary>
    internal void Kick()
    {
        lock (_lock)
        {
            if (_kick.CurrentCount == 0)
            {
                _kick.Release();
            }
        }
    }

    /// <summary>
    /// Runs on the owner for the whole connection: sends whatever is out of sync, tells the peer when
    /// everything is, then waits for new marks (a write the peer refused).
    /// </summary>
    private async Task RunAsync(ReplicationSession session, CancellationToken ct)
    {
        var replica = _volume.Replica;
        var clock = Stopwatch.StartNew();
        var windowStart = clock.Elapsed;
        long windowBytes = 0;
        var cursor = 0L;
        var inFlight = new List<Task>(RunsInFlight);
        var sinceFlush = 0L;
        var lastFlush = TimeSpan.Zero;
        var sending = session.Role == SyncRole.Source;
        if (sending)
        {
            LogStarted(_volume.Name, session.PeerName, replica.OutOfSyncBytes);
        }

        try
        {
            while (!ct.IsCancellationRequested)
            {
                await _resumed.Task.WaitAsync(ct);
                if (!_volume.DiskUsable)
                {
                    // This replica's disk is detached: what it would send can no longer be vouched for. The
                    // pairing that follows stops this engine; until then it sends nothing.
                    await DrainAsync(inFlight);
                    _running = false;
                    await _kick.WaitAsync(ct);
                    continue;
                }

                var run = replica.NextOutOfSyncRun(cursor, ChunkBytes);
                if (run is null && inFlight.Count > 0)
                {
                    // A run's bits stay set until the peer confirmed it: let every run in flight land
                    // before looking again from the start, or one would be sent twice at once.
                    await DrainAsync(inFlight);
                    continue;
                }

                if (run is null && cursor != 0)
                {
                    // End of a pass: what it sent becomes durable on the target before the next pass looks again.
                    await FlushSentAsync(session, ct);
                    sinceFlush = 0;
                    lastFlush = clock.Elapsed;
                    cursor = 0;
                    continue;
                }

                if (run is null)
                {
                    if (sending)
                    {
                        // Completing clears every bit on both sides: no change may be in flight
                        // meanwhile, or a region it marks (the peer refused it) is cleared with the rest.
                        bool completed;
                        using (await _volume.OrderRangeAsync(0, long.MaxValue, ct))
                        {
                            if (replica.NextOutOfSyncRun(0, ChunkBytes) is not null)
                            {
                                continue;
                            }

                            await session.Peer.CompleteResyncAsync(replica.Generation, ct);
                            completed = _volume.CompleteResyncAsSource();
                        }

                        if (completed)
                        {
                            Interlocked.Increment(ref _completed);
                            LogCompleted(_volume.Name, session.PeerName, SentBytes, clock.Elapsed.TotalSeconds);
                        }

                        sending = false;
                        _checksumPass = false;
                    }

                    _running = false;
                    Volatile.Write(ref _rate, 0);
                    await _kick.WaitAsync(ct);
                    continue;
                }

                if (!sending)
                {
                    sending = true;
                    Interlocked.Exchange(ref _total, replica.OutOfSyncBytes);
                    LogStarted(_volume.Name, session.PeerName, replica.OutOfSyncBytes);
                }

                _running = true;
                var (offset, length, mayMatch) = run.Value;
                var started = clock.Elapsed;
                inFlight.Add(SendRunOrBackOffAsync(session, offset, length, mayMatch, ct));
                if (inFlight.Count >= RunsInFlight)
                {
                    var landed = await Task.WhenAny(inFlight);
                    inFlight.Remove(landed);
                    await landed;
                }

                cursor = offset + length;
                windowBytes += length;
                sinceFlush += length;
                if (sinceFlush >= FlushEveryBytes || clock.Elapsed - lastFlush >= FlushEveryInterval)
                {
                    await DrainAsync(inFlight);
                    await FlushSentAsync(session, ct);
                    sinceFlush = 0;
                    lastFlush = clock.Elapsed;
                }

                await ThrottleAsync(clock.Elapsed - started, length, ct);
                var window = clock.Elapsed - windowStart;
                if (window >= TimeSpan.FromSeconds(1))
                {
                    Volatile.Write(ref _rate, windowBytes / window.TotalSeconds);
                    windowStart = clock.Elapsed;
                    windowBytes = 0;
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (Exception e) when (e is PeerUnavailableException or PeerFailedException or BlockDeviceException)
        {
            LogInterrupted(_volume.Name, session.PeerName, e.Message, replica.OutOfSyncBytes);
        }
        finally
        {
            // Runs still in flight end with the connection or the stop; what they did not finish stays marked.
            try
            {
                await Task.WhenAll(inFlight);
            }
            catch (Exception e) when (e is OperationCanceledException or PeerUnavailableException or PeerFailedException or BlockDeviceException)
            {
            }

            _running = false;
            Volatile.Write(ref _rate, 0);
        }
    }

    /// <summary>Flushes the target; the runs it had confirmed before then are durable there, and their bits clear.</summary>
    private async Task FlushSentAsync(ReplicationSession session, CancellationToken ct)
    {
        _volume.Replica.BeginFlushOfSent();
        await session.Peer.FlushAsync(ct);
        _volume.Replica.CompleteFlushOfSent();
    }

    private static async Task DrainAsync(List<Task> inFlight)
    {
        var runs = inFlight.ToArray();
        inFlight.Clear();
        await Task.WhenAll(runs);
    }

    /// <summary>
    /// Sends one run. When the peer (or this replica) refuses it, its bits stay set and the resync backs
    /// off and goes on: a resync that gave up would leave the target inconsistent until a reconnect.
    /// </summary>
    private async Task SendRunOrBackOffAsync(ReplicationSession session, long offset, long length, bool mayMatch, CancellationToken ct)
    {
        try
        {
            await SendRunAsync(session, offset, length, mayMatch, ct);
            Volatile.Write(ref _failuresInARow, 0);
        }
        catch (Exception e) when (e is PeerFailedException or BlockDeviceException)
        {
            if (e is BlockDeviceException local && ReplicatedVolume.IsDiskFault(local))
            {
                // This replica's own disk failed under the resync: it is detached, and the volume pairs again without it.
                _volume.OnLocalFault(local);
            }

            // A run with a block that has no good copy keeps failing until a write replaces the block.
            LogRunFailed(_volume.Name, session.PeerName, offset, length, e.Message);
            var failures = Interlocked.Increment(ref _failuresInARow);
            await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(5000, 100 << Math.Min(failures - 1, 6))), ct);
        }
    }

    /// <summary>
    /// Sends one dirty run under the volume's write order. Comparing first (a checksum-based
    /// resync, and after a crash for the runs that may match, <see cref="OutOfSyncRun.MayMatch"/>:
    /// most activity-log extents hold the same data on both sides), only the regions that differ are
    /// sent, and each side's blocks are checked against their own checksums on the way
    /// (<see cref="RegionCompare"/>): a region damaged here is repaired from the peer's good copy, one
    /// damaged there gets this one, one damaged on both is left alone (it reads as an I/O error). A run
    /// this replica changed alone differs for certain: comparing it would read it on both sides only to
    /// send it anyway. A block of the run that fails its checksum here with no good copy anywhere is
    /// never sent: its region stays marked and the run fails, to be retried after a back-off.
    /// </summary>
    private async Task SendRunAsync(ReplicationSession session, long offset, long length, bool mayMatch, CancellationToken ct)
    {
        using var order = await _volume.OrderRangeAsync(offset, length, ct);
        if (!_volume.DiskUsable)
        {
            return;
        }

        var unsent = new List<long>();
        if (ChecksumFirst || _checksumPass || (session.CompareFirst && mayMatch))
        {
            var granularity = _volume.Replica.Granularity;
            var remote = session.Peer.ChecksumsAsync(offset, length, granularity, ct);
            var local = await _volume.ChecksumsAsync(offset, length, granularity, ct);
            var peer = await remote;
            if (peer.Count != local.Count)
            {
                throw new PeerFailedException(StorageError.Io, $"the peer returned {peer.Count} region checksums for {local.Count} regions");
            }

            for (var i = 0; i < local.Count;)
            {
                var verdict = RegionCompare.Judge(local, peer, i);
                var start = offset + ((long)i * granularity);
                if (verdict is RegionVerdict.Same)
                {
                    i++;
                    continue;
                }

                if (verdict is RegionVerdict.TakePeer or RegionVerdict.Unrecoverable)
                {
                    await RepairFromPeerAsync(start, Math.Min(granularity, offset + length - start), ct);
                    i++;
                    continue;
                }

                var first = i;
                while (i < local.Count && RegionCompare.Judge(local, peer, i) is RegionVerdict.Differ or RegionVerdict.SendLocal)
                {
                    i++;
                }

                await SendRangeAsync(session, start, Math.Min(offset + length, offset + ((long)i * granularity)) - start, unsent, ct);
            }

            Interlocked.Add(ref _compared, length);
        }
        else
        {
            await SendRangeAsync(session, offset, length, unsent, ct);
        }

        NoteSentAllBut(offset, length, unsent);
        Interlocked.Add(ref _covered, length);
        if (unsent.Count > 0)
        {
            throw new CorruptBlockException(unsent[0], Hashing.BlockStatus.Bad,
                $"volume '{_volume.Name}': {unsent.Count} block(s) of [{offset}, +{length}), the first at {unsent[0]}, fail their checksums and have no good copy; they are not sent");
        }
    }

    /// <summary>
    /// Repairs the damaged blocks of a region from the peer's copy, which the comparison found good (or at least
    /// better). A block with no good copy on either side stays as it is: it reads as an I/O error on both.
    /// </summary>
    private async Task RepairFromPeerAsync(long offset, long length, CancellationToken ct)
    {
        var damaged = new List<DamagedBlock>();
        var buffer = ArrayPool<byte>.Shared.Rent((int)length);
        try
        {
            _volume.Local.ReadBlocks(offset, buffer.AsSpan(0, (int)length), default, damaged);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        foreach (var block in damaged)
        {
            try
            {
                await _volume.RecoverBlockAsync(block, IntegrityPath.Compare, peerIsCurrent: true, ct);
            }
            catch (CorruptBlockException)
            {
                // Counted and logged as unrecoverable; nothing is copied either way.
            }
        }
    }

    /// <summary>
    /// Notes the run's regions sent (cleared once the target's flush made them durable, see <see cref="ReplicaStore.NoteSent"/>),
    /// except those holding a block that could not be sent: they stay marked.
    /// </summary>
    private void NoteSentAllBut(long offset, long length, List<long> unsent)
    {
        var granularity = _volume.Replica.Granularity;
        var position = offset;
        foreach (var block in unsent)
        {
            var region = block / granularity * granularity;
            if (region > position)
            {
                _volume.Replica.NoteSent(position, region - position);
            }

            position = Math.Max(position, region + granularity);
        }

        if (offset + length > position)
        {
            _volume.Replica.NoteSent(position, offset + length - position);
        }
    }

    /// <summary>
    /// Sends a range as this replica holds it: data where it has data, a trim where it has a hole, so thin stays thin.
    /// Every block is checked as it is read; one that fails with no good copy is left out (its offset goes to
    /// <paramref name="unsent"/>) and the data around it is sent.
    /// </summary>
    private async Task SendRangeAsync(ReplicationSession session, long offset, long length, List<long> unsent, CancellationToken ct)
    {
        var local = _volume.Local;
        var allocation = await local.GetAllocationAsync(offset, length, ct);
        var position = offset;
        var buffer = ArrayPool<byte>.Shared.Rent((int)length);
        var checksums = ArrayPool<byte>.Shared.Rent(BlockChecksum.BytesFor((int)length) + BlockChecksum.Size);
        try
        {
            foreach (var extent in allocation)
            {
                if ((extent.State & AllocationState.Zero) != 0)
                {
                    await session.Peer.ResyncAsync(WriteOp.Trim(position, extent.Length, IoFlags.None), ct);
                }
                else
                {
                    await SendDataAsync(session, position, buffer.AsMemory(0, (int)extent.Length), checksums, unsent, ct);
                }

                position += extent.Length;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            ArrayPool<byte>.Shared.Return(checksums);
        }
    }

    /// <summary>Reads and sends one allocated piece, with its blocks' checksums (computed by the check), around any block that cannot be sent.</summary>
    private async Task SendDataAsync(ReplicationSession session, long offset, Memory<byte> data, byte[] checksums, List<long> unsent, CancellationToken ct)
    {
        var aligned = BlockChecksum.IsAligned(offset, data.Length) && _volume.Local.BlockChecksums;
        var sums = aligned ? checksums.AsMemory(0, BlockChecksum.BytesFor(data.Length)) : Memory<byte>.Empty;
        var damaged = new List<DamagedBlock>();
        _volume.Local.ReadBlocks(offset, data.Span, sums.Span, damaged);
        var skip = new List<long>();
        foreach (var block in damaged)
        {
            try
            {
                var good = await _volume.RecoverBlockAsync(block, IntegrityPath.Resync, peerIsCurrent: false, ct);
                var start = Math.Max(offset, block.Offset);
                var end = Math.Min(offset + data.Length, block.Offset + BlockChecksum.BlockSize);
                good.AsSpan((int)(start - block.Offset), (int)(end - start)).CopyTo(data.Span[(int)(start - offset)..]);
                if (aligned)
                {
                    BlockChecksum.Set(sums.Span, (int)((block.Offset - offset) / BlockChecksum.BlockSize), BlockChecksum.Of(good));
                }
            }
            catch (CorruptBlockException)
            {
                skip.Add(block.Offset);
            }
        }

        var from = offset;
        foreach (var bad in skip.Append(offset + data.Length))
        {
            var start = Math.Max(from, offset);
            var end = Math.Min(bad, offset + data.Length);
            if (end > start)
            {
                var piece = data.Slice((int)(start - offset), (int)(end - start));
                var pieceSums = aligned ? sums.Slice(BlockChecksum.BytesFor((int)(start - offset)), BlockChecksum.BytesFor(piece.Length)) : default;
                await session.Peer.ResyncAsync(WriteOp.Write(start, piece, IoFlags.None) with { Checksums = pieceSums }, ct);
                Interlocked.Add(ref _sent, piece.Length);
            }

            from = bad + BlockChecksum.BlockSize;
        }

        unsent.AddRange(skip);
    }

    private async Task ThrottleAsync(TimeSpan spent, long bytes, CancellationToken ct)
    {
        var wait = TimeSpan.Zero;
        if (RateLimit > 0)
        {
            wait = TimeSpan.FromSeconds((double)bytes / RateLimit) - spent;
        }

        if (Adaptive && _volume.ForegroundActive)
        {
            var yieldTime = spent * ((1 - ForegroundShare) / ForegroundShare);
            wait = yieldTime > wait ? yieldTime : wait;
        }

        if (wait > TimeSpan.Zero)
        {
            await Task.Delay(wait, ct);
        }
    }

    private static TaskCompletionSource CreateResumed(bool resumed)
    {
        var source = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (resumed)
        {
            source.SetResult();
        }

        return source;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Volume {Volume}: resync to {Peer} started, {Bytes} bytes out of sync")]
    private partial void LogStarted(string volume, string peer, long bytes);

    [LoggerMessage(Level = LogLevel.Information, Message = "Volume {Volume}: resync to {Peer} completed, {Sent} bytes sent in {Seconds:0.0} s")]
    private partial void LogCompleted(string volume, string peer, long sent, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Volume}: resync to {Peer} interrupted ({Reason}); {Remaining} bytes remain and resume on reconnect")]
    private partial void LogInterrupted(string volume, string peer, string reason, long remaining);

    [LoggerMessage(Level = LogLevel.Error, Message = "Volume {Volume}: resync to {Peer} of [{Offset}, +{Length}) failed ({Reason}); retrying")]
    private partial void LogRunFailed(string volume, string peer, long offset, long length, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Volume {Volume}: resync paused")]
    private partial void LogPaused(string volume);

    [LoggerMessage(Level = LogLevel.Information, Message = "Volume {Volume}: resync resumed")]
    private partial void LogResumed(string volume);
}

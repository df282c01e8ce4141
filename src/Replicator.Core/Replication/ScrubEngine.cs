using System.Buffers;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Replicator.Core.Devices;
using Replicator.Core.Hashing;
using Replicator.Core.Storage;
using Replicator.Core.Volumes;

namespace Replicator.Core.Replication;

internal enum ScrubRunState
{
    /// <summary>No pass runs; the next starts when it is due or asked for.</summary>
    Idle,

    Running,

    Paused,

    /// <summary>A pass runs but this replica is not up to date (a resync target): it has nothing to vouch for until the resync ends.</summary>
    Waiting,
}

/// <summary>Where a scrub stands: what the admin API, the CLI and the status page show.</summary>
internal readonly record struct ScrubProgress(
    ScrubRunState State,
    long DoneBytes,
    long TotalBytes,
    double BytesPerSecond,
    TimeSpan? Eta,
    ScrubFindings Pass,
    ScrubFindings LastPass,
    DateTimeOffset? PassStarted,
    DateTimeOffset LastCompleted,
    DateTimeOffset? NextDue);

/// <summary>
/// The background scrub of one replica: reads every allocated block of the volume here, checks it against
/// its checksum, and repairs a damaged one from the peer's verified copy (see
/// <see cref="ReplicatedVolume.RecoverBlockAsync"/>), so damage nobody reads is found and healed while the other
/// copy is still good. Each node scrubs its own replica; both run, so both replicas are read.
/// </summary>
/// <remarks>
/// <para><b>Schedule.</b> A pass starts when <see cref="Interval"/> (default 7 days) has passed since the last
/// ended, or when an admin asks; pause and resume hold it. The position, the schedule and the findings live in
/// <see cref="ScrubStateFile"/>, saved every few seconds and at every finding, so a pass resumes after a restart
/// where it was.</para>
/// <para><b>Rate.</b> A fixed cap (<see cref="RateLimit"/>, bytes per second, 0 = none) and, while clients use
/// the volume, at most <see cref="ForegroundShare"/> of the time, as the resync controller does. Holes are
/// skipped without reading. The scrub takes no range of the write order: a read racing a write is no alarm
/// (see <see cref="ThinVolume"/>), and a repair never goes over a newer write.</para>
/// </remarks>
internal sealed partial class ScrubEngine
{
    public const int ChunkBytes = 1 << 20;
    public const long DefaultRateLimit = 64L << 20;
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromDays(7);
    private static readonly TimeSpan SaveEvery = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan LookAgain = TimeSpan.FromMinutes(1);

    private readonly ReplicatedVolume _volume;
    private readonly IFileSystem _files;
    private readonly string _statePath;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly SemaphoreSlim _signal = new(0, 1);
    private ScrubState _state;
    private bool _startRequested;
    private bool _waiting;
    private double _rate;
    private CancellationTokenSource? _stop;
    private Task _run = Task.CompletedTask;

    public ScrubEngine(ReplicatedVolume volume, IFileSystem files, string statePath, ILogger logger)
    {
        _volume = volume;
        _files = files;
        _statePath = statePath;
        _logger = logger;
        _state = ScrubStateFile.TryRead(files, statePath, out var problem) ?? ScrubState.Fresh(DateTimeOffset.UtcNow);
        if (problem is not null)
        {
            LogStateLost(volume.Name, problem);
        }
    }

    /// <summary>Time from the end of one pass to the start of the next; null: passes run only when asked for.</summary>
    public TimeSpan? Interval { get; set; } = DefaultInterval;

    /// <summary>Bytes per second the scrub may read; 0 means no cap.</summary>
    public long RateLimit { get; set; } = DefaultRateLimit;

    /// <summary>Fraction of time the scrub may take while clients use the volume.</summary>
    public double ForegroundShare { get; set; } = 0.25;

    public ScrubProgress Progress
    {
        get
        {
            ScrubState state;
            lock (_lock)
            {
                state = _state;
            }

            var running = state.PassStarted is not null;
            var run = state.Paused ? ScrubRunState.Paused : !running ? ScrubRunState.Idle : _waiting ? ScrubRunState.Waiting : ScrubRunState.Running;
            var rate = run == ScrubRunState.Running ? Volatile.Read(ref _rate) : 0;
            var remaining = Math.Max(0, _volume.Size - state.Position);
            TimeSpan? eta = !running ? null : rate > 0 ? TimeSpan.FromSeconds(remaining / rate) : null;
            return new ScrubProgress(run, running ? state.Position : 0, _volume.Size, rate, eta, state.Pass, state.LastPass,
                state.PassStarted, state.LastCompleted, Interval is { } interval ? state.LastCompleted + interval : null);
        }
    }

    public void Start()
    {
        lock (_lock)
        {
            _stop = new CancellationTokenSource();
            var token = _stop.Token;
            _run = Task.Run(() => RunAsync(token), CancellationToken.None);
        }
    }

    public async Task StopAsync()
    {
        CancellationTokenSource? stop;
        Task run;
        lock (_lock)
        {
            (stop, run, _stop) = (_stop, _run, null);
        }

        if (stop is not null)
        {
            await stop.CancelAsync();
            await run;
            stop.Dispose();
        }
    }

    /// <summary>Starts a pass now (unless one runs), and lifts a pause.</summary>
    public void RequestStart()
    {
        lock (_lock)
        {
            _startRequested = _state.PassStarted is null;
            Save(_state with { Paused = false });
        }

        Signal();
    }

    public void Pause()
    {
        lock (_lock)
        {
            Save(_state with { Paused = true });
        }

        Signal();
    }

    public void Resume()
    {
        lock (_lock)
        {
            Save(_state with { Paused = false });
        }

        Signal();
    }

    /// <summary>
    /// Reads and checks [<paramref name="offset"/>, +<paramref name="length"/>) of this replica, repairing what it
    /// can from the peer, and says what it found.
    /// </summary>
    internal async Task<ScrubFindings> ScanAsync(long offset, int length, CancellationToken ct)
    {
        var damaged = new List<DamagedBlock>();
        var buffer = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            _volume.Local.ReadBlocks(offset, buffer.AsSpan(0, length), default, damaged);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        long detected = 0, healed = 0, unrecoverable = 0;
        foreach (var block in damaged)
        {
            var bad = block.Status == BlockStatus.Bad;
            detected += bad ? 1 : 0;
            try
            {
                await _volume.RecoverBlockAsync(block, IntegrityPath.Scrub, peerIsCurrent: false, ct);
                healed += bad ? 1 : 0;
            }
            catch (CorruptBlockException)
            {
                unrecoverable++;
            }
        }

        return new ScrubFindings(length, detected, healed, unrecoverable);
    }

    private async Task RunAsync(CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var lastSave = clock.Elapsed;
        var windowStart = clock.Elapsed;
        long windowBytes = 0;
        try
        {
            while (true)
            {
                ct.ThrowIfCancellationRequested();
                ScrubState state;
                lock (_lock)
                {
                    state = _state;
                }

                if (state.Paused)
                {
                    await WaitAsync(Timeout.InfiniteTimeSpan, ct);
                    continue;
                }

                if (state.PassStarted is null)
                {
                    var wait = Interval is { } interval ? state.LastCompleted + interval - DateTimeOffset.UtcNow : LookAgain;
                    bool start;
                    lock (_lock)
                    {
                        start = _startRequested || wait <= TimeSpan.Zero;
                        _startRequested = false;
                        if (start)
                        {
                            Save(_state with { PassStarted = DateTimeOffset.UtcNow, Position = 0, Pass = default });
                        }
                    }

                    if (start)
                    {
                        LogStarted(_volume.Name, _volume.Size, _volume.Local.AllocatedBytes);
                    }
                    else
                    {
                        await WaitAsync(wait < LookAgain ? wait : LookAgain, ct);
                    }

                    continue;
                }

                _waiting = !_volume.Replica.IsUpToDate;
                if (_waiting)
                {
                    await WaitAsync(TimeSpan.FromSeconds(1), ct);
                    continue;
                }

                var size = _volume.Size;
                if (state.Position >= size)
                {
                    Complete(state);
                    Volatile.Write(ref _rate, 0);
                    continue;
                }

                var started = clock.Elapsed;
                int length;
                bool hole;
                ScrubFindings found;
                try
                {
                    (length, hole) = await NextPieceAsync(state.Position, size, ct);
                    found = hole ? default : await ScanAsync(state.Position, length, ct);
                }
                catch (BlockDeviceException e) when (e.Error != StorageError.Shutdown)
                {
                    // The disk failed a read (not a checksum): what to do about a failing disk is decided elsewhere.
                    LogStopped(_volume.Name, e.Message);
                    await WaitAsync(TimeSpan.FromSeconds(10), ct);
                    continue;
                }

                lock (_lock)
                {
                    if (_state.PassStarted == state.PassStarted)
                    {
                        _state = _state with { Position = state.Position + length, Pass = _state.Pass.Add(found) };
                        if (found.Detected > 0 || clock.Elapsed - lastSave >= SaveEvery)
                        {
                            Save(_state);
                            lastSave = clock.Elapsed;
                        }
                    }
                }

                if (!hole)
                {
                    windowBytes += length;
                    await ThrottleAsync(clock.Elapsed - started, length, ct);
                }

                if (clock.Elapsed - windowStart >= TimeSpan.FromSeconds(1))
                {
                    Volatile.Write(ref _rate, windowBytes / (clock.Elapsed - windowStart).TotalSeconds);
                    windowStart = clock.Elapsed;
                    windowBytes = 0;
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (BlockDeviceException e)
        {
            LogStopped(_volume.Name, e.Message);
        }
        finally
        {
            lock (_lock)
            {
                Save(_state);
            }
        }
    }

    /// <summary>The next piece from <paramref name="position"/>: a run of holes (skipped whole) or at most a chunk of data.</summary>
    private async Task<(int Length, bool Hole)> NextPieceAsync(long position, long size, CancellationToken ct)
    {
        var allocation = await _volume.Local.GetAllocationAsync(position, Math.Min(size - position, 1L << 40), ct);
        var first = allocation[0];
        return (first.State & AllocationState.Hole) != 0
            ? ((int)Math.Min(first.Length, int.MaxValue & ~(BlockChecksum.BlockSize - 1)), true)
            : ((int)Math.Min(first.Length, ChunkBytes), false);
    }

    private void Complete(ScrubState state)
    {
        lock (_lock)
        {
            if (_state.PassStarted != state.PassStarted)
            {
                return;
            }

            Save(_state with { PassStarted = null, Position = 0, LastCompleted = DateTimeOffset.UtcNow, LastPass = _state.Pass, Pass = default });
        }

        var pass = state.Pass;
        LogCompleted(_volume.Name, pass.ScannedBytes, pass.Detected, pass.Healed, pass.Unrecoverable, (DateTimeOffset.UtcNow - state.PassStarted!.Value).TotalSeconds);
    }

    private async Task ThrottleAsync(TimeSpan spent, long bytes, CancellationToken ct)
    {
        var wait = RateLimit > 0 ? TimeSpan.FromSeconds((double)bytes / RateLimit) - spent : TimeSpan.Zero;
        if (_volume.ForegroundActive)
        {
            var yieldTime = spent * ((1 - ForegroundShare) / ForegroundShare);
            wait = yieldTime > wait ? yieldTime : wait;
        }

        if (wait > TimeSpan.Zero)
        {
            await Task.Delay(wait, ct);
        }
    }

    private async Task WaitAsync(TimeSpan timeout, CancellationToken ct)
    {
        try
        {
            await _signal.WaitAsync(timeout, ct);
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private void Signal()
    {
        lock (_lock)
        {
            if (_signal.CurrentCount == 0)
            {
                _signal.Release();
            }
        }
    }

    /// <summary>Saves the state (the caller holds the lock). A state that cannot be saved costs a rescan after a restart, not data.</summary>
    private void Save(ScrubState state)
    {
        _state = state;
        try
        {
            ScrubStateFile.Write(_files, _statePath, state);
        }
        catch (IOException e)
        {
            LogSaveFailed(_volume.Name, e.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Volume {Volume}: scrub started over {Size} bytes ({Allocated} allocated)")]
    private partial void LogStarted(string volume, long size, long allocated);

    [LoggerMessage(Level = LogLevel.Information, Message = "Volume {Volume}: scrub completed: {Scanned} bytes read, {Detected} damaged block(s) found, {Healed} healed, {Unrecoverable} unrecoverable, in {Seconds:0.0} s")]
    private partial void LogCompleted(string volume, long scanned, long detected, long healed, long unrecoverable, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Volume}: the scrub state is lost ({Problem}); the schedule starts afresh")]
    private partial void LogStateLost(string volume, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Volume}: the scrub could not read ({Reason}); it tries again")]
    private partial void LogStopped(string volume, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Volume}: saving the scrub state failed ({Reason}); a restart would rescan")]
    private partial void LogSaveFailed(string volume, string reason);
}

using System.Diagnostics;
using Replicator.Protocol.Nbd.Client;

namespace Replicator.Node.Gateway;

/// <summary>
/// Which path is active, and every event that can change it: a path connected, a path failed, a node's admin
/// API reported new state, the watchdog ticked. All of it under one lock per volume; the request path only
/// reads <see cref="_active"/>.
/// </summary>
internal sealed partial class GatewayVolume
{
    private readonly Lock _lock = new();
    private TaskCompletionSource _pathChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private string? _preferred;
    private bool _preferredChanged;
    private string? _lastActiveNode;
    private string? _pendingReason;
    private long _switches;
    private long _lastSwitchTimestamp;
    private GatewaySwitch? _lastSwitch;
    private long _slowLoggedTimestamp;

    public long Switches => Interlocked.Read(ref _switches);

    /// <summary>The node serving the volume now; null while none can.</summary>
    public string? ActiveNode => Volatile.Read(ref _active)?.Node.Name;

    public string? PreferredNode
    {
        get
        {
            lock (_lock)
            {
                return _preferred;
            }
        }
    }

    /// <summary>A path's connections are up: it may become active at once if nothing is, or later by <see cref="Evaluate"/>.</summary>
    public void OnPathUp(GatewayPath path, NbdClient[] clients, CancellationToken run)
    {
        lock (_lock)
        {
            if (run.IsCancellationRequested)
            {
                return;
            }

            path.Clients = clients;
            path.State = PathState.Up;
            path.UpSinceTimestamp = Stopwatch.GetTimestamp();
            GatewayLog.PathUp(_logger, Name, path.Node.Name, clients.Length);
            EvaluateLocked();
        }
    }

    public void OnConnectFailed(GatewayPath path, string reason, CancellationToken run)
    {
        lock (_lock)
        {
            if (run.IsCancellationRequested)
            {
                return;
            }

            // Logged when the reason changes, not on every retry of a node that stays down.
            if (path.LastFailure != reason)
            {
                GatewayLog.ConnectFailed(_logger, Name, path.Node.Name, reason);
            }

            RecordFailureLocked(path, reason);

            EvaluateLocked();
        }
    }

    /// <summary>
    /// The path failed under a request on <paramref name="client"/> (or its connection ended): unless it already
    /// reconnected since, it is marked failed, its connections are aborted (failing every request in flight on it,
    /// which re-sends them) and, if it was active, the other path takes over.
    /// </summary>
    public void OnPathFailed(GatewayPath path, NbdClient client, string reason)
    {
        lock (_lock)
        {
            if (path.State == PathState.Up && path.Owns(client))
            {
                FailLocked(path, reason);
            }
        }
    }

    /// <summary>A node's admin API answered (<paramref name="view"/>) or could not be asked (null).</summary>
    public void UpdateView(GatewayNode node, NodeVolumeView? view)
    {
        lock (_lock)
        {
            var path = _paths.First(p => p.Node == node);
            path.View = view;
            if (view is null)
            {
                return;
            }

            if (view.SizeBytes > _size)
            {
                Volatile.Write(ref _size, view.SizeBytes);
            }

            if (view.PreferredNode is { } preferred && preferred != _preferred && _paths.Any(p => p.Node.Name == preferred))
            {
                GatewayLog.PreferredChanged(_logger, Name, _preferred ?? "(none)", preferred);
                _preferred = preferred;
                _preferredChanged = _active?.Node.Name != preferred;
            }

            EvaluateLocked();
        }
    }

    /// <summary>The watchdog: fails a path whose oldest request is overdue, and lets a hold-down that ran out take effect.</summary>
    public void Tick()
    {
        var now = Stopwatch.GetTimestamp();
        lock (_lock)
        {
            foreach (var path in _paths)
            {
                if (path.State != PathState.Up || path.OldestInFlightStarted() is not { } oldest
                    || Stopwatch.GetElapsedTime(oldest, now) < _options.Timeout)
                {
                    continue;
                }

                var waited = Stopwatch.GetElapsedTime(oldest, now).TotalSeconds;
                var reason = $"a request waited {waited:0.0} s for an answer (timeout {_options.Timeout.TotalSeconds:0.#} s)";
                if (path != _active)
                {
                    if (_active is not null)
                    {
                        FailLocked(path, reason + " on a path no longer in use");
                    }
                }
                else if (_paths.Any(p => p != path && CanTakeOverFromSlowPath(p, now)))
                {
                    FailLocked(path, reason);
                }
                else if (Stopwatch.GetElapsedTime(_slowLoggedTimestamp, now) >= _options.Timeout)
                {
                    _slowLoggedTimestamp = now;
                    GatewayLog.SlowWithoutAlternative(_logger, Name, path.Node.Name, waited);
                }
            }

            EvaluateLocked();
        }
    }

    /// <summary>A timeout moves the volume only to a connected node that has not failed within the hold-down, so two slow nodes do not bounce it.</summary>
    private bool CanTakeOverFromSlowPath(GatewayPath path, long now) =>
        path.State == PathState.Up
        && (path.LastFailureTimestamp == 0 || Stopwatch.GetElapsedTime(path.LastFailureTimestamp, now) >= _options.HoldDown);

    private void FailLocked(GatewayPath path, string reason)
    {
        var inFlight = path.InFlight;
        var clients = path.Clients;
        path.Clients = null;
        RecordFailureLocked(path, reason);
        GatewayLog.PathFailed(_logger, Name, path.Node.Name, reason, inFlight);
        if (clients is not null)
        {
            // Off this thread and out of the lock: aborting fails the requests in flight, whose continuations
            // come back here to send themselves again.
            ThreadPool.UnsafeQueueUserWorkItem(static state =>
            {
                foreach (var client in state.Clients)
                {
                    client.Abort(state.Reason);
                }
            }, (Clients: clients, Reason: reason), preferLocal: false);
        }

        if (_active == path)
        {
            Volatile.Write(ref _active, null);
            _pendingReason = $"{path.Node.Name} failed: {reason}";
        }

        EvaluateLocked();
    }

    private void RecordFailureLocked(GatewayPath path, string reason)
    {
        var now = Stopwatch.GetTimestamp();
        var wasUpLongEnough = path.State == PathState.Up && Stopwatch.GetElapsedTime(path.UpSinceTimestamp, now) >= _options.HoldDown;
        path.FailuresInARow = wasUpLongEnough ? 1 : path.FailuresInARow + 1;
        path.State = PathState.Failed;
        path.LastFailure = reason;
        path.LastFailureAt = DateTimeOffset.UtcNow;
        path.LastFailureTimestamp = now;
    }

    /// <summary>
    /// Chooses the active path. With none active: the preferred node if connected, else any connected node once
    /// the preferred one has been tried. With one active: the preferred node, if it is not the active one, is
    /// connected, reports the volume in sync, and the hold-down since the last move has passed.
    /// </summary>
    private void EvaluateLocked()
    {
        var preferred = _paths.FirstOrDefault(p => p.Node.Name == _preferred) ?? _paths[0];
        if (_active is { } active)
        {
            if (active != preferred && preferred.State == PathState.Up && preferred.View?.InSync == true
                && Stopwatch.GetElapsedTime(_lastSwitchTimestamp) >= _options.HoldDown)
            {
                SwitchLocked(preferred, _preferredChanged
                    ? $"the preferred node is now {preferred.Node.Name}"
                    : $"failback: {preferred.Node.Name} is connected and up to date");
            }

            return;
        }

        var next = preferred.State == PathState.Up ? preferred
            : preferred.State == PathState.Connecting ? null
            : _paths.Where(p => p.State == PathState.Up).OrderByDescending(p => p.View?.InSync == true).FirstOrDefault();
        if (next is not null)
        {
            SwitchLocked(next, _pendingReason ?? $"{next.Node.Name} is the first node connected");
        }
    }

    private void SwitchLocked(GatewayPath to, string reason)
    {
        var from = _lastActiveNode;
        Volatile.Write(ref _active, to);
        _lastActiveNode = to.Node.Name;
        _pendingReason = null;
        if (to.Node.Name == _preferred)
        {
            _preferredChanged = false;
        }

        if (from is not null && from != to.Node.Name)
        {
            _lastSwitchTimestamp = Stopwatch.GetTimestamp();
            _lastSwitch = new GatewaySwitch(DateTimeOffset.UtcNow, from, to.Node.Name, reason);
            var count = Interlocked.Increment(ref _switches);
            GatewayLog.Switched(_logger, Name, from, to.Node.Name, reason, count);
        }
        else
        {
            GatewayLog.Serving(_logger, Name, to.Node.Name, reason);
        }

        var changed = _pathChanged;
        _pathChanged = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        changed.TrySetResult();
    }

    /// <summary>The volume's routing as the status endpoint shows it.</summary>
    public GatewayVolumeStatus Describe()
    {
        lock (_lock)
        {
            return new GatewayVolumeStatus(
                Name, Size, _preferred, _active?.Node.Name, Switches, _lastSwitch, ReissuedRequests, _attachments,
                [.. _paths.Select(p => new GatewayPathStatus(
                    p.Node.Name, p.State.ToString().ToLowerInvariant(), p.Clients?.Length ?? 0, p.InFlight,
                    p.LastFailure, p.LastFailureAt, p.FailuresInARow, p.View?.InSync == true,
                    p.View is { } v ? new GatewayReplicaView(v.Connection, v.DiskState, v.OutOfSyncBytes) : null))]);
        }
    }

    private string DescribePaths()
    {
        lock (_lock)
        {
            return string.Join("; ", _paths.Select(p => $"{p.Node.Name} {p.State.ToString().ToLowerInvariant()}{(p.LastFailure is { } f ? $" ({f})" : "")}"));
        }
    }
}

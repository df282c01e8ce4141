namespace Replicator.Node.Gateway;

/// <summary>
/// When the volume's paths run: from the first client's attach to <see cref="GatewayOptions.IdleDisconnect"/>
/// after the last one's detach. Each run of the paths has its own cancellation; stopping a run forgets its
/// connections at once (they disconnect in the background) and whatever the stopped run reports is ignored.
/// </summary>
internal sealed partial class GatewayVolume
{
    private readonly List<Task> _runs = [];
    private CancellationTokenSource? _running;
    private int _attachments;
    private long _detachGeneration;
    private bool _disposed;

    /// <summary>Clients attached now.</summary>
    public int Attachments
    {
        get
        {
            lock (_lock)
            {
                return _attachments;
            }
        }
    }

    /// <summary>A client attached: the paths connect, unless they already run.</summary>
    public void Attach()
    {
        lock (_lock)
        {
            _attachments++;
            _detachGeneration++;
            if (_running is not null || _disposed)
            {
                return;
            }

            _running = new CancellationTokenSource();
            _runs.RemoveAll(t => t.IsCompleted);
            foreach (var path in _paths)
            {
                path.State = PathState.Connecting;
                path.FailuresInARow = 0;
                var token = _running.Token;
                _runs.Add(Task.Run(() => path.RunAsync(token), CancellationToken.None));
            }
        }
    }

    /// <summary>A client detached: after the last one, the paths disconnect once <see cref="GatewayOptions.IdleDisconnect"/> passed without a new attach.</summary>
    public void Detach()
    {
        long generation;
        lock (_lock)
        {
            if (--_attachments > 0)
            {
                return;
            }

            generation = ++_detachGeneration;
        }

        _ = StopWhenIdleAsync(generation);
    }

    public async ValueTask DisposeAsync()
    {
        Task[] runs;
        lock (_lock)
        {
            _disposed = true;
            StopLocked();
            runs = [.. _runs];
            _pathChanged.TrySetResult();
        }

        await Task.WhenAll(runs);
    }

    private async Task StopWhenIdleAsync(long generation)
    {
        await Task.Delay(_options.IdleDisconnect);
        lock (_lock)
        {
            if (generation == _detachGeneration && _attachments == 0)
            {
                StopLocked();
            }
        }
    }

    private void StopLocked()
    {
        if (_running is not { } running)
        {
            return;
        }

        _running = null;
        running.Cancel();
        Volatile.Write(ref _active, null);
        _lastActiveNode = null;
        _pendingReason = null;
        foreach (var path in _paths)
        {
            path.Clients = null;
            path.State = PathState.Idle;
        }
    }
}

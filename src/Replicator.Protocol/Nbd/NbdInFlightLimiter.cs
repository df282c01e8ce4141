namespace Replicator.Protocol.Nbd;

/// <summary>
/// Bounds what one connection has in flight: a number of requests and a number of buffered bytes
/// (WRITE payloads and READ replies). The connection's reader acquires before it takes a request off
/// the wire and waits when the budget is spent, which stops it reading and pushes back on the client
/// through the transport; each request releases when its reply has been written. A request larger than
/// the byte budget is still admitted when nothing else is in flight, so no valid request waits forever.
/// </summary>
internal sealed class NbdInFlightLimiter
{
    private readonly Lock _lock = new();
    private readonly int _maxRequests;
    private readonly long _maxBytes;
    private int _requests;
    private long _bytes;
    private TaskCompletionSource? _spaceWaiter;
    private TaskCompletionSource? _idleWaiter;

    public NbdInFlightLimiter(int maxRequests, long maxBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRequests, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, 1);
        _maxRequests = maxRequests;
        _maxBytes = maxBytes;
    }

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _requests;
            }
        }
    }

    /// <summary>Admits one request holding <paramref name="bytes"/>, waiting while the budget is spent.</summary>
    public ValueTask AcquireAsync(long bytes, CancellationToken cancellationToken)
    {
        return TryAcquire(bytes) ? ValueTask.CompletedTask : WaitAndAcquireAsync(bytes, cancellationToken);
    }

    /// <summary>Releases what <see cref="AcquireAsync"/> admitted. Returns true when nothing is left in flight.</summary>
    public bool Release(long bytes)
    {
        TaskCompletionSource? space;
        TaskCompletionSource? idle = null;
        bool isIdle;
        lock (_lock)
        {
            _requests--;
            _bytes -= bytes;
            space = _spaceWaiter;
            _spaceWaiter = null;
            isIdle = _requests == 0;
            if (isIdle)
            {
                idle = _idleWaiter;
                _idleWaiter = null;
            }
        }

        space?.TrySetResult();
        idle?.TrySetResult();
        return isIdle;
    }

    /// <summary>Completes when no request is in flight.</summary>
    public Task WhenIdleAsync()
    {
        lock (_lock)
        {
            if (_requests == 0)
            {
                return Task.CompletedTask;
            }

            _idleWaiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _idleWaiter.Task;
        }
    }

    private bool TryAcquire(long bytes)
    {
        lock (_lock)
        {
            if (_requests >= _maxRequests || (_requests > 0 && _bytes + bytes > _maxBytes))
            {
                return false;
            }

            _requests++;
            _bytes += bytes;
            return true;
        }
    }

    private async ValueTask WaitAndAcquireAsync(long bytes, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task wait;
            lock (_lock)
            {
                _spaceWaiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _spaceWaiter.Task;
            }

            if (TryAcquire(bytes))
            {
                return;
            }

            await wait.WaitAsync(cancellationToken);
        }
    }
}

using System.Threading.Tasks.Sources;

namespace Replicator.Protocol.Nbd;

/// <summary>
/// Bounds what one connection has in flight: a number of requests and a number of buffered bytes
/// (WRITE payloads and READ replies). The connection's reader acquires before it takes a request off
/// the wire and waits when the budget is spent, which stops it reading and pushes back on the client
/// through the transport; each request releases once its reply is in the transport. A request larger
/// than the byte budget is still admitted when nothing else is in flight, so no valid request waits forever.
/// </summary>
/// <remarks>
/// Only the reader ever waits, so the wait is one reusable <see cref="IValueTaskSource"/>: blocking and
/// waking allocate nothing. A release that makes room hands the room to the waiter directly.
/// </remarks>
internal sealed class NbdInFlightLimiter : IValueTaskSource
{
    private readonly Lock _lock = new();
    private readonly int _maxRequests;
    private readonly long _maxBytes;
    private ManualResetValueTaskSourceCore<bool> _waiter = new() { RunContinuationsAsynchronously = true };
    private int _requests;
    private long _bytes;
    private bool _waiting;
    private long _waitingBytes;
    private bool _cancelled;

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

    /// <summary>
    /// Admits one request holding <paramref name="bytes"/>, waiting while the budget is spent.
    /// One caller at a time. Throws <see cref="OperationCanceledException"/> once <see cref="Cancel"/> was called.
    /// </summary>
    public ValueTask AcquireAsync(long bytes)
    {
        lock (_lock)
        {
            if (_cancelled)
            {
                return ValueTask.FromException(new OperationCanceledException("the connection is closing"));
            }

            if (Fits(bytes))
            {
                Take(bytes);
                return ValueTask.CompletedTask;
            }

            _waiter.Reset();
            _waiting = true;
            _waitingBytes = bytes;
            return new ValueTask(this, _waiter.Version);
        }
    }

    /// <summary>Releases what <see cref="AcquireAsync"/> admitted. Returns true when nothing is left in flight.</summary>
    public bool Release(long bytes)
    {
        bool wake;
        bool idle;
        lock (_lock)
        {
            _requests--;
            _bytes -= bytes;
            wake = _waiting && Fits(_waitingBytes);
            if (wake)
            {
                _waiting = false;
                Take(_waitingBytes);
            }

            idle = _requests == 0;
        }

        if (wake)
        {
            _waiter.SetResult(true);
        }

        return idle;
    }

    /// <summary>Fails a waiting and every later <see cref="AcquireAsync"/>: the connection is being torn down.</summary>
    public void Cancel()
    {
        bool wake;
        lock (_lock)
        {
            _cancelled = true;
            wake = _waiting;
            _waiting = false;
        }

        if (wake)
        {
            _waiter.SetException(new OperationCanceledException("the connection is closing"));
        }
    }

    void IValueTaskSource.GetResult(short token) => _waiter.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _waiter.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _waiter.OnCompleted(continuation, state, token, flags);

    private bool Fits(long bytes) => _requests < _maxRequests && (_requests == 0 || _bytes + bytes <= _maxBytes);

    private void Take(long bytes)
    {
        _requests++;
        _bytes += bytes;
    }
}

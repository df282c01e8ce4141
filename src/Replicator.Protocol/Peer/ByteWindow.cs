namespace Replicator.Protocol.Peer;

/// <summary>
/// A budget of bytes shared by waiters, served in arrival order: what bounds the request payloads
/// a peer connection holds at once (receiving) and keeps in flight (sending).
/// </summary>
/// <remarks>
/// A request larger than the whole window waits until the window is empty and then takes all of it,
/// so it neither deadlocks nor overtakes. Waiters are served first come, first served: a large one
/// is not starved by a stream of small ones.
/// </remarks>
internal sealed class ByteWindow
{
    private readonly Lock _lock = new();
    private readonly Queue<Waiter> _waiters = new();
    private long _available;

    public ByteWindow(long capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        Capacity = capacity;
        _available = capacity;
    }

    public long Capacity { get; }

    /// <summary>Bytes taken now.</summary>
    public long InUse
    {
        get
        {
            lock (_lock)
            {
                return Capacity - _available;
            }
        }
    }

    /// <summary>Takes <paramref name="bytes"/> (at most the capacity) if they are free and nobody waits; false otherwise.</summary>
    public bool TryTake(long bytes)
    {
        var cost = Cost(bytes);
        lock (_lock)
        {
            if (_waiters.Count == 0 && _available >= cost)
            {
                _available -= cost;
                return true;
            }

            return false;
        }
    }

    /// <summary>Takes <paramref name="bytes"/> (at most the capacity), waiting for them; returns what to give back to <see cref="Release"/>.</summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired first; nothing is taken.</exception>
    public async ValueTask<long> TakeAsync(long bytes, CancellationToken cancellationToken)
    {
        var cost = Cost(bytes);
        Waiter waiter;
        lock (_lock)
        {
            if (_waiters.Count == 0 && _available >= cost)
            {
                _available -= cost;
                return cost;
            }

            waiter = new Waiter(cost);
            _waiters.Enqueue(waiter);
        }

        await using (cancellationToken.Register(static state => ((Waiter)state!).Completion.TrySetCanceled(), waiter))
        {
            try
            {
                await waiter.Completion.Task;
                return cost;
            }
            catch (OperationCanceledException)
            {
                lock (_lock)
                {
                    // Cancelled before it was granted (a grant completes the task first): nothing was taken.
                    Serve();
                }

                throw new OperationCanceledException(cancellationToken);
            }
        }
    }

    /// <summary>Gives back what <see cref="TryTake"/> or <see cref="TakeAsync"/> took (the same amount).</summary>
    public void Release(long bytes)
    {
        var cost = Cost(bytes);
        lock (_lock)
        {
            _available = Math.Min(Capacity, _available + cost);
            Serve();
        }
    }

    /// <summary>What a request of <paramref name="bytes"/> takes from the window.</summary>
    public long Cost(long bytes) => Math.Clamp(bytes, 0, Capacity);

    /// <summary>Grants waiters in order while the first one fits; called under the lock.</summary>
    private void Serve()
    {
        while (_waiters.TryPeek(out var first))
        {
            if (!first.Completion.Task.IsCanceled && _available < first.Cost)
            {
                return;
            }

            _waiters.Dequeue();
            if (first.Completion.TrySetResult())
            {
                _available -= first.Cost;
            }
        }
    }

    private sealed class Waiter(long cost)
    {
        public long Cost { get; } = cost;

        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

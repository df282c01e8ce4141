using System.Threading.Tasks.Sources;

namespace Replicator.Core.Replication;

/// <summary>
/// An async lock over byte ranges of one volume, taken by the node that orders the volume's
/// writes: a write holds its range from the moment it is ordered until it is applied on both
/// replicas. Requests whose ranges do not overlap proceed in parallel; overlapping requests are
/// granted in the order they arrived, so both replicas apply overlapping writes in one order.
/// </summary>
/// <remarks>
/// <para>
/// <b>The rule.</b> A request is granted once no request that arrived before it and overlaps it
/// is still held or waiting. Waiting requests count, not only holders: with A held, B waiting
/// for A, and C overlapping B but not A, C waits for B even though A does not touch C. That is what
/// makes the order FIFO among overlapping writes (C can never overtake B), at the price of C
/// sometimes waiting for a range it does not share with any holder.
/// </para>
/// <para>
/// <b>Cost.</b> All requests, held and waiting, sit in one list in arrival order under one lock.
/// Acquiring scans the list once; releasing re-examines the waiters behind the released request.
/// The list is as long as the volume's writes in flight (bounded by the NBD and peer in-flight
/// limits), where a list beats an interval tree. An uncontended acquire allocates the request node
/// and nothing else; a waiting one completes through that same node (no Task).
/// </para>
/// <para>
/// <b>Cancellation</b> removes a waiting request as if it had never arrived (requests behind it may
/// then be granted) and fails its wait with <see cref="OperationCanceledException"/>. Cancelling
/// after the grant does nothing: the holder releases as usual. Continuations run asynchronously,
/// never inside the lock or inside the releaser's <see cref="Releaser.Dispose"/>.
/// </para>
/// </remarks>
internal sealed class RangeLock
{
    private readonly Lock _gate = new();
    private Node? _head;
    private Node? _tail;

    /// <summary>Requests holding their range.</summary>
    public int Holders { get; private set; }

    /// <summary>Requests waiting for their range.</summary>
    public int Waiters { get; private set; }

    /// <summary>Waits until [<paramref name="offset"/>, +<paramref name="length"/>) can be held; dispose the result to release it.</summary>
    public ValueTask<Releaser> AcquireAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        if (offset > long.MaxValue - length)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, "the range overflows");
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<Releaser>(cancellationToken);
        }

        var node = new Node(this, offset, offset + length);
        lock (_gate)
        {
            var blocked = BlockedByEarlier(node, _tail);
            Append(node);
            if (!blocked)
            {
                node.State = NodeState.Held;
                Holders++;
                return new ValueTask<Releaser>(new Releaser(node));
            }

            node.State = NodeState.Waiting;
            Waiters++;
        }

        if (cancellationToken.CanBeCanceled)
        {
            var registration = cancellationToken.UnsafeRegister(static (state, token) => ((Node)state!).Owner.Cancel((Node)state, token), node);
            lock (_gate)
            {
                if (node.State == NodeState.Waiting)
                {
                    node.Registration = registration;
                }
                else
                {
                    registration.Unregister();
                }
            }
        }

        return new ValueTask<Releaser>(node, node.Version);
    }

    private void Release(Node node)
    {
        lock (_gate)
        {
            if (node.State != NodeState.Held)
            {
                return;
            }

            node.State = NodeState.Released;
            Holders--;
            var next = node.Next;
            Remove(node);
            GrantWaitersFrom(next);
        }
    }

    private void Cancel(Node node, CancellationToken token)
    {
        lock (_gate)
        {
            if (node.State != NodeState.Waiting)
            {
                return;
            }

            node.State = NodeState.Cancelled;
            Waiters--;
            var next = node.Next;
            Remove(node);
            node.Fail(new OperationCanceledException(token));
            GrantWaitersFrom(next);
        }
    }

    /// <summary>Grants every waiting request from <paramref name="start"/> on that no earlier request overlaps.</summary>
    private void GrantWaitersFrom(Node? start)
    {
        for (var node = start; node is not null; node = node.Next)
        {
            if (node.State == NodeState.Waiting && !BlockedByEarlier(node, node.Previous))
            {
                node.State = NodeState.Held;
                Waiters--;
                Holders++;
                node.Registration.Unregister();
                node.Registration = default;
                node.Grant();
            }
        }
    }

    /// <summary>Whether any request from <paramref name="last"/> back to the head overlaps <paramref name="node"/>.</summary>
    private static bool BlockedByEarlier(Node node, Node? last)
    {
        for (var earlier = last; earlier is not null; earlier = earlier.Previous)
        {
            if (earlier.Start < node.End && node.Start < earlier.End)
            {
                return true;
            }
        }

        return false;
    }

    private void Append(Node node)
    {
        node.Previous = _tail;
        if (_tail is null)
        {
            _head = node;
        }
        else
        {
            _tail.Next = node;
        }

        _tail = node;
    }

    private void Remove(Node node)
    {
        if (node.Previous is null)
        {
            _head = node.Next;
        }
        else
        {
            node.Previous.Next = node.Next;
        }

        if (node.Next is null)
        {
            _tail = node.Previous;
        }
        else
        {
            node.Next.Previous = node.Previous;
        }

        node.Previous = node.Next = null;
    }

    /// <summary>Holds a range until disposed. Disposing twice, or disposing the default value, does nothing.</summary>
    internal readonly struct Releaser : IDisposable
    {
        private readonly Node? _node;

        internal Releaser(Node node) => _node = node;

        public void Dispose() => _node?.Owner.Release(_node);
    }

    internal enum NodeState
    {
        New,
        Waiting,
        Held,
        Released,
        Cancelled,
    }

    /// <summary>One request: a list entry, and the completion its waiter awaits.</summary>
    internal sealed class Node(RangeLock owner, long start, long end) : IValueTaskSource<Releaser>
    {
        private ManualResetValueTaskSourceCore<Releaser> _completion = new() { RunContinuationsAsynchronously = true };

        public RangeLock Owner { get; } = owner;

        public long Start { get; } = start;

        public long End { get; } = end;

        public short Version => _completion.Version;

        internal NodeState State { get; set; }

        internal Node? Previous { get; set; }

        internal Node? Next { get; set; }

        internal CancellationTokenRegistration Registration { get; set; }

        public void Grant() => _completion.SetResult(new Releaser(this));

        public void Fail(Exception error) => _completion.SetException(error);

        public Releaser GetResult(short token) => _completion.GetResult(token);

        public ValueTaskSourceStatus GetStatus(short token) => _completion.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _completion.OnCompleted(continuation, state, token, flags);
    }
}

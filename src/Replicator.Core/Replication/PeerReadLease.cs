using System.Diagnostics;

namespace Replicator.Core.Replication;

/// <summary>
/// The read lease of one peer connection, both ways: how long this node may still serve reads
/// locally as a paired replica (<see cref="IsHeld"/>), and how long it has promised its peer not
/// to acknowledge a write the peer lacks (<see cref="WaitGrantsExpiredAsync"/>).
/// </summary>
/// <remarks>
/// <para>A paired replica reads locally, and it learns that the link is gone only at the keepalive
/// timeout. Its peer may learn it earlier, win the witness's vote and acknowledge writes alone: the
/// replica would then serve data older than a write already acknowledged. The lease closes that
/// window without a round trip per read:</para>
/// <list type="bullet">
/// <item><b>Held.</b> Each Ping asks the peer for a lease; when its Pong comes back, this node may
/// serve paired reads until the Ping's send time plus the lease granted (<see cref="Renew"/>).
/// Without a lease, reads wait for the next Pong or for the connection to end, when the rule for a
/// replica alone takes over.</item>
/// <item><b>Granted.</b> Answering a Ping, this node promises not to acknowledge a write its peer
/// lacks until its receive time plus the lease plus a margin for clock rates (<see cref="TryGrant"/>).
/// The Ping was received after it was sent, so the promise outlasts the lease. Once the connection
/// has ended (<see cref="Close"/>, which also ends the grants), writing alone first waits for the
/// last promise to run out.</item>
/// </list>
/// <para>The lease is shorter than the keepalive timeout, so a node that declares its peer gone for
/// silence has no promise left to wait for; a peer that died, or a connection that broke, costs the
/// first write alone at most one lease.</para>
/// </remarks>
internal sealed class PeerReadLease
{
    private readonly Lock _lock = new();
    private long _heldUntil;
    private long _grantedUntil;
    private bool _closed;
    private TaskCompletionSource _changed = NewSignal();

    /// <summary>
    /// What an earlier process of this node may have promised before it died: a closed lease whose last
    /// promise runs <paramref name="longest"/> (the most this node grants, its keepalive timeout) from now.
    /// Promises live in memory only. Without this, a node killed and restarted within one lease, while a
    /// partition hid the kill from its peer, could write alone while the peer still served reads under the
    /// old promise; with it, only the first write alone in the first seconds after a start waits.
    /// </summary>
    public static PeerReadLease PromisedBeforeThisProcess(TimeSpan longest)
    {
        var lease = new PeerReadLease();
        lease.TryGrant(longest);
        lease.Close();
        return lease;
    }

    /// <summary>Whether this node may serve reads of its paired replicas now.</summary>
    public bool IsHeld => Stopwatch.GetTimestamp() < Volatile.Read(ref _heldUntil);

    /// <summary>Whether the connection has ended: nothing is held or granted from then on.</summary>
    public bool IsClosed
    {
        get
        {
            lock (_lock)
            {
                return _closed;
            }
        }
    }

    /// <summary>Whether <see cref="WaitGrantsExpiredAsync"/> would return at once.</summary>
    public bool GrantsExpired
    {
        get
        {
            lock (_lock)
            {
                return _closed && Stopwatch.GetTimestamp() >= _grantedUntil;
            }
        }
    }

    /// <summary>The margin a promise adds to the lease it grants: clocks on two machines run at slightly different rates.</summary>
    private static TimeSpan Margin(TimeSpan lease) => (lease / 50) + TimeSpan.FromMilliseconds(1);

    /// <summary>The peer granted <paramref name="lease"/> in answer to a Ping sent at <paramref name="sentTimestamp"/> (a <see cref="Stopwatch"/> timestamp).</summary>
    public void Renew(long sentTimestamp, TimeSpan lease)
    {
        if (lease <= TimeSpan.Zero)
        {
            return;
        }

        var until = sentTimestamp + ToTimestampTicks(lease);
        TaskCompletionSource changed;
        lock (_lock)
        {
            if (_closed || until <= _heldUntil)
            {
                return;
            }

            Volatile.Write(ref _heldUntil, until);
            changed = SwapSignal();
        }

        changed.TrySetResult();
    }

    /// <summary>Promises the peer not to write alone for <paramref name="lease"/> (plus the margin) from now; false once the connection has ended.</summary>
    public bool TryGrant(TimeSpan lease)
    {
        var until = Stopwatch.GetTimestamp() + ToTimestampTicks(lease + Margin(lease));
        lock (_lock)
        {
            if (_closed)
            {
                return false;
            }

            _grantedUntil = Math.Max(_grantedUntil, until);
            return true;
        }
    }

    /// <summary>The connection ended: this node holds no lease any more and grants none.</summary>
    public void Close()
    {
        TaskCompletionSource changed;
        lock (_lock)
        {
            if (_closed)
            {
                return;
            }

            _closed = true;
            Volatile.Write(ref _heldUntil, 0);
            changed = SwapSignal();
        }

        changed.TrySetResult();
    }

    /// <summary>
    /// The peer said Goodbye, which it says only once it serves no more paired reads: no promise
    /// this node made it needs keeping, so a stop for maintenance fails over without the wait.
    /// </summary>
    public void PeerReleased()
    {
        lock (_lock)
        {
            _grantedUntil = 0;
        }
    }

    /// <summary>
    /// Waits until this node holds the lease (true) or the connection has ended (false). Throws
    /// <see cref="TimeoutException"/> when neither happens within <paramref name="timeout"/>.
    /// </summary>
    public async ValueTask<bool> WaitHeldAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.GetTimestamp() + ToTimestampTicks(timeout);
        while (true)
        {
            Task changed;
            lock (_lock)
            {
                if (_closed)
                {
                    return false;
                }

                if (IsHeld)
                {
                    return true;
                }

                changed = _changed.Task;
            }

            // A Pong may come back too late to give a lease that is still running: check again at
            // each renewal, and give up at the deadline.
            await WaitChangedAsync(changed, deadline, "no read lease from the peer, and the connection did not end", timeout, cancellationToken);
        }
    }

    /// <summary>
    /// Waits until the peer can hold no lease this node granted: the connection has ended (waited
    /// for up to <paramref name="closeTimeout"/>, then <see cref="TimeoutException"/>) and the
    /// last promise has run out.
    /// </summary>
    public async ValueTask WaitGrantsExpiredAsync(TimeSpan closeTimeout, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.GetTimestamp() + ToTimestampTicks(closeTimeout);
        long grantedUntil;
        while (true)
        {
            Task changed;
            lock (_lock)
            {
                if (_closed)
                {
                    grantedUntil = _grantedUntil;
                    break;
                }

                changed = _changed.Task;
            }

            await WaitChangedAsync(changed, deadline, "the connection to the peer did not end", closeTimeout, cancellationToken);
        }

        // Timers count whole milliseconds and may fire a little early: check against the clock.
        while (Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), grantedUntil) is var remaining && remaining > TimeSpan.Zero)
        {
            await Task.Delay(remaining + TimeSpan.FromMilliseconds(1), cancellationToken);
        }
    }

    /// <summary>Waits for the next change of the lease, or until <paramref name="deadline"/>; past it, throws that <paramref name="what"/> within <paramref name="timeout"/>.</summary>
    private static async Task WaitChangedAsync(Task changed, long deadline, string what, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
        if (left <= TimeSpan.Zero)
        {
            throw new TimeoutException($"{what} within {timeout.TotalSeconds} s");
        }

        try
        {
            await changed.WaitAsync(left, cancellationToken);
        }
        catch (TimeoutException)
        {
        }
    }

    private static long ToTimestampTicks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private TaskCompletionSource SwapSignal()
    {
        var changed = _changed;
        _changed = NewSignal();
        return changed;
    }
}

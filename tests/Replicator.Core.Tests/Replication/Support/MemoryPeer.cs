using System.Collections.Concurrent;
using System.Diagnostics;
using Replicator.Core.Devices;
using Replicator.Core.Hashing;
using Replicator.Core.Replication;

namespace Replicator.Core.Tests.Replication.Support;

/// <summary>The kinds of request one replica sends the other.</summary>
internal enum PeerCall
{
    Replicate,
    Forward,
    Resync,
    Flush,
    Read,
    CompleteResync,
    Checksums,
}

/// <summary>One request as the receiving side sees it, for interceptors and call logs.</summary>
internal readonly record struct PeerRequest(PeerCall Call, WriteOp? Op, long Offset, long Length);

/// <summary>
/// One connection between the two sides. Cutting it fails every request from then on, and every
/// request still waiting for its answer, with <see cref="PeerUnavailableException"/>; a request the
/// receiving side had not started handling is never handled.
/// </summary>
/// <remarks>
/// Each side has the connection's <see cref="PeerReadLease"/>, renewed both ways every
/// <see cref="LeaseRenewal"/> as Pings would renew it, for <see cref="LeaseDuration"/>.
/// <see cref="Cut"/> is both sides noticing at once (each closes its lease, as its connection ends);
/// <see cref="Partition"/> is the link going silent before either has noticed.
/// </remarks>
internal sealed class MemoryLink : IDisposable
{
    public static readonly TimeSpan LeaseDuration = TimeSpan.FromMilliseconds(100);
    public static readonly TimeSpan LeaseRenewal = TimeSpan.FromMilliseconds(20);

    private readonly CancellationTokenSource _cut = new();
    private readonly Timer _pings;

    public MemoryLink()
    {
        Exchange();
        _pings = new Timer(_ => Exchange(), null, LeaseRenewal, LeaseRenewal);
    }

    /// <summary>Side A's end of the connection: the lease A holds, and the one it granted B.</summary>
    public PeerReadLease LeaseA { get; } = new();

    public PeerReadLease LeaseB { get; } = new();

    public CancellationToken Token => _cut.Token;

    public bool IsCut => _cut.IsCancellationRequested;

    public PeerReadLease LeaseOf(string side) => side == "A" ? LeaseA : LeaseB;

    /// <summary>The link breaks and both sides notice at once.</summary>
    public void Cut()
    {
        LeaseA.Close();
        LeaseB.Close();
        Partition();
    }

    /// <summary>Pongs are late: the leases are not renewed until <see cref="ResumePings"/>; requests still go through.</summary>
    public void PausePings() => _pings.Change(Timeout.Infinite, Timeout.Infinite);

    public void ResumePings() => _pings.Change(TimeSpan.Zero, LeaseRenewal);

    /// <summary>The link goes silent: requests fail and leases are no longer renewed, but neither side's connection has ended yet.</summary>
    public void Partition()
    {
        _pings.Change(Timeout.Infinite, Timeout.Infinite);
        _cut.Cancel();
    }

    public void Dispose()
    {
        _pings.Dispose();
        _cut.Dispose();
    }

    private void Exchange()
    {
        if (IsCut)
        {
            return;
        }

        Ping(LeaseA, LeaseB);
        Ping(LeaseB, LeaseA);
    }

    private static void Ping(PeerReadLease asker, PeerReadLease granter)
    {
        var sent = Stopwatch.GetTimestamp();
        if (granter.TryGrant(LeaseDuration))
        {
            asker.Renew(sent, LeaseDuration);
        }
    }
}

/// <summary>
/// <see cref="IPeerVolume"/> over a <see cref="MemoryLink"/>: each call runs on the other side's
/// <see cref="ReplicatedVolume"/> on its own thread, as a request over the network would, with
/// data copied as it would be on the wire. The caller's cancellation stops its wait, not the
/// request. Failures come back as the real channel reports them: a refusal (a
/// <see cref="BlockDeviceException"/> on the other side) as <see cref="PeerFailedException"/>, a
/// cut link as <see cref="PeerUnavailableException"/>.
/// </summary>
internal sealed class MemoryPeer(ReplicaSide remote, MemoryLink link) : IPeerVolume
{
    public ValueTask ReplicateAsync(WriteOp op, CancellationToken cancellationToken)
    {
        var sent = OnTheWire(op);
        return SendAsync(new PeerRequest(PeerCall.Replicate, sent, op.Offset, op.Length), t => remote.Volume.ApplyFromPeerAsync(sent, t), cancellationToken);
    }

    public ValueTask ForwardAsync(WriteOp op, CancellationToken cancellationToken)
    {
        var sent = OnTheWire(op);
        return SendAsync(new PeerRequest(PeerCall.Forward, sent, op.Offset, op.Length), t => remote.Volume.OrderForwardedAsync(sent, t), cancellationToken);
    }

    public ValueTask ResyncAsync(WriteOp op, CancellationToken cancellationToken)
    {
        var sent = OnTheWire(op);
        return SendAsync(new PeerRequest(PeerCall.Resync, sent, op.Offset, op.Length), t => remote.Volume.ApplyFromPeerAsync(sent, t, resync: true), cancellationToken);
    }

    public ValueTask FlushAsync(CancellationToken cancellationToken) =>
        SendAsync(new PeerRequest(PeerCall.Flush, null, 0, 0), t => remote.Volume.FlushForPeerAsync(t), cancellationToken);

    public async ValueTask ReadAsync(long offset, Memory<byte> destination, Memory<byte> checksums, CancellationToken cancellationToken)
    {
        var received = new byte[destination.Length];
        var receivedChecksums = new byte[checksums.Length];
        await SendAsync(new PeerRequest(PeerCall.Read, null, offset, destination.Length), t => remote.Volume.ReadForPeerAsync(offset, received, receivedChecksums, t), cancellationToken);
        Assert.True(checksums.IsEmpty || BlockChecksum.FirstMismatch(received, receivedChecksums) < 0, "a block read from the peer does not match the checksum it came with");
        received.CopyTo(destination);
        receivedChecksums.CopyTo(checksums);
    }

    public ValueTask CompleteResyncAsync(GenerationIds source, CancellationToken cancellationToken) =>
        SendAsync(new PeerRequest(PeerCall.CompleteResync, null, 0, 0), t => remote.Volume.CompleteResyncAsTargetAsync(source, t), cancellationToken);

    public ValueTask<RegionSums> ChecksumsAsync(long offset, long length, int regionSize, CancellationToken cancellationToken) =>
        SendAsync(new PeerRequest(PeerCall.Checksums, null, offset, length), t => remote.Volume.ChecksumsAsync(offset, length, regionSize, t), cancellationToken);

    /// <summary>What arrives: a copy of the data, and of its block checksums, which the receiving connection checks against the data.</summary>
    private static WriteOp OnTheWire(WriteOp op)
    {
        if (op.Kind != WriteOpKind.Write)
        {
            return op;
        }

        Assert.True(op.Checksums.IsEmpty || BlockChecksum.FirstMismatch(op.Data.Span, op.Checksums.Span) < 0, $"{op} was sent with block checksums that do not match its data");
        return op with { Data = op.Data.ToArray(), Checksums = op.Checksums.ToArray() };
    }

    private async ValueTask SendAsync(PeerRequest request, Func<CancellationToken, ValueTask> handle, CancellationToken cancellationToken) =>
        await SendAsync(request, async t =>
        {
            await handle(t);
            return true;
        }, cancellationToken);

    private async ValueTask<T> SendAsync<T>(PeerRequest request, Func<CancellationToken, ValueTask<T>> handle, CancellationToken cancellationToken)
    {
        if (link.IsCut)
        {
            throw Unavailable();
        }

        var handled = HandleRemotelyAsync(request, handle);
        using var waiting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, link.Token);
        try
        {
            return await handled.WaitAsync(waiting.Token);
        }
        catch (OperationCanceledException) when (link.IsCut)
        {
            throw Unavailable();
        }
        catch (BlockDeviceException e)
        {
            throw new PeerFailedException(e.Error, $"{remote.Name}: {e.Message}");
        }
    }

    /// <summary>What the receiving side does with a request: note it, let the test's interceptor at it, then handle it.</summary>
    private async Task<T> HandleRemotelyAsync<T>(PeerRequest request, Func<CancellationToken, ValueTask<T>> handle)
    {
        await Task.Yield();
        remote.Note(request);
        if (remote.Incoming is { } intercept)
        {
            await intercept(request, link.Token);
        }

        link.Token.ThrowIfCancellationRequested();
        return await handle(link.Token);
    }

    private PeerUnavailableException Unavailable() => new($"the link to {remote.Name} is cut");
}

/// <summary>
/// A point where requests wait until the test opens it. The first <c>passFirst</c> requests go
/// through; later ones are held. A held request fails when its link is cut, and is then never handled.
/// </summary>
internal sealed class Gate(int passFirst = 0)
{
    private readonly Lock _lock = new();
    private readonly TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<(int Count, TaskCompletionSource Reached)> _watchers = [];
    private int _arrivals;

    public int Arrivals
    {
        get
        {
            lock (_lock)
            {
                return _arrivals;
            }
        }
    }

    /// <summary>Completes when the first request is held.</summary>
    public Task Holding => WhenArrived(passFirst + 1);

    /// <summary>Completes once <paramref name="count"/> requests have arrived.</summary>
    public Task WhenArrived(int count)
    {
        lock (_lock)
        {
            if (_arrivals >= count)
            {
                return Task.CompletedTask;
            }

            var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _watchers.Add((count, reached));
            return reached.Task;
        }
    }

    public async ValueTask PassAsync(CancellationToken linkToken)
    {
        int arrival;
        lock (_lock)
        {
            arrival = ++_arrivals;
            foreach (var watcher in _watchers.Where(w => w.Count <= arrival))
            {
                watcher.Reached.TrySetResult();
            }

            _watchers.RemoveAll(w => w.Count <= arrival);
        }

        if (arrival > passFirst)
        {
            await _open.Task.WaitAsync(linkToken);
        }
    }

    public void Open() => _open.TrySetResult();
}

/// <summary>Counts and keeps what a side received, by kind.</summary>
internal sealed class CallLog
{
    private readonly ConcurrentDictionary<PeerCall, int> _counts = new();
    private readonly ConcurrentQueue<PeerRequest> _requests = new();

    public int Count(PeerCall call) => _counts.GetValueOrDefault(call);

    public IReadOnlyList<PeerRequest> Of(PeerCall call) => _requests.Where(r => r.Call == call).ToList();

    public void Add(PeerRequest request)
    {
        _counts.AddOrUpdate(request.Call, 1, (_, n) => n + 1);
        _requests.Enqueue(request);
    }
}

using System.IO.Pipelines;
using Microsoft.Extensions.Logging;
using Replicator.Core.Replication;

namespace Replicator.Protocol.Peer;

/// <summary>
/// An established peer connection (after <see cref="PeerHandshake"/>) over any duplex pipe:
/// TCP in production, in-memory pipes in tests and benchmarks.
/// </summary>
/// <remarks>
/// <para>How the pieces run:</para>
/// <list type="bullet">
/// <item>The receive loop (<c>PeerConnection.Receive.cs</c>) is the only reader of the input.
/// It cuts frames, answers Pings, hands replies to the requests waiting for them, checks
/// incoming requests at the edge and starts the handler for each. It never waits for a send:
/// both nodes may be pushing writes at each other at once, and two receive loops each blocked
/// on a send the other does not read would deadlock the pair. Replies it sends itself (Pong,
/// a checksum mismatch, an invalid request) go out as background sends. It waits for one thing
/// only: room in the receive window for a request's payload (<see cref="PeerConnectionOptions.ReceiveWindow"/>),
/// which frees as this node replies. A peer that follows the protocol never makes it wait, since
/// it keeps its own requests' payloads within the window it learned from the Hello (the send
/// window, taken before a request is sent and given back when its reply arrives); one that does not
/// is held back in its socket instead of being buffered here.</item>
/// <item>Senders (<c>PeerConnection.Send.cs</c>) come from any thread. A frame is written and
/// flushed under one lock, so frames never interleave. Requests are correlated with replies by
/// request id; a semaphore bounds how many are in flight.</item>
/// <item>The keepalive timer (<c>PeerConnection.Keepalive.cs</c>) pings every interval and ends
/// the connection when nothing has arrived for the timeout, even while a sender is stuck on a
/// peer that stopped reading.</item>
/// <item>Ending (this file): the first of the receive loop ending, a keepalive timeout, a send
/// failure or <see cref="CloseAsync"/> records the end, cancels <see cref="_closing"/> (which
/// wakes the keepalive timer, stuck flushes and lock waits, and tells handlers), stops the
/// reader, and fails every pending request with <see cref="PeerConnectionClosedException"/>.
/// The run task then waits for the loops and the running handlers and completes both pipes.</item>
/// </list>
/// </remarks>
internal sealed partial class PeerConnection : IAsyncDisposable
{
    private readonly IDuplexPipe _transport;
    private readonly IPeerRequestHandler _handler;
    private readonly PeerConnectionOptions _options;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _closing = new();
    private readonly TaskCompletionSource _handlersDrained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ByteWindow _receiveWindow;
    private PeerConnectionEnd? _end;
    private Task<PeerConnectionEnd>? _run;
    private string? _closeReason;

    /// <summary>Handlers still running, plus one held by the receive loop until it ends.</summary>
    private int _handlersRunning = 1;

    /// <param name="transport">The connection's bytes. Once started, the connection completes both pipes when it ends.</param>
    /// <param name="handler">Serves the peer's requests.</param>
    /// <param name="options">Validated here: a bad value throws with the setting's name.</param>
    /// <param name="logger">Receives the connection's events.</param>
    /// <param name="peerName">Names the peer in logs and errors, e.g. "node-b (10.0.0.2:7100)".</param>
    public PeerConnection(IDuplexPipe transport, IPeerRequestHandler handler, PeerConnectionOptions options, ILogger logger, string peerName)
    {
        ArgumentNullException.ThrowIfNull(transport);
        ArgumentNullException.ThrowIfNull(handler);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        options.Validate();

        _transport = transport;
        _handler = handler;
        _options = options;
        _logger = logger;
        PeerName = peerName;
        _requestSlots = new SemaphoreSlim(options.MaxRequestsInFlight, options.MaxRequestsInFlight);
        _receiveWindow = new ByteWindow(options.ReceiveWindow);
        _sendWindow = new ByteWindow(options.EffectiveSendWindow);
    }

    public string PeerName { get; }

    /// <summary>The read lease this connection keeps with the peer, both ways (see <see cref="PeerReadLease"/>); closed when the connection ends.</summary>
    public PeerReadLease ReadLease { get; } = new();

    /// <summary>The read lease each Ping asks for; the peer may grant less (at most its own keepalive timeout).</summary>
    public TimeSpan ReadLeaseAsked => _options.EffectiveReadLease;

    /// <summary>How the connection ended; null while it is up.</summary>
    public PeerConnectionEnd? End => Volatile.Read(ref _end);

    /// <summary>Completes, never faulted, once the connection has ended, its handlers have returned and its pipes are completed.</summary>
    public Task<PeerConnectionEnd> Completion => _run ?? throw new InvalidOperationException("The peer connection has not been started.");

    /// <summary>
    /// Starts receiving, serving requests and keeping the connection alive, on the thread pool
    /// (never on the caller's thread or synchronization context).
    /// </summary>
    public void Start()
    {
        if (_run is not null)
        {
            throw new InvalidOperationException("The peer connection is already started.");
        }

        MarkReceived();
        _run = Task.Run(RunAsync);
    }

    /// <summary>
    /// Says Goodbye to the peer (waiting at most <see cref="PeerConnectionOptions.GoodbyeTimeout"/>),
    /// ends the connection with <see cref="PeerConnectionEndReason.LocalShutdown"/> unless it already
    /// ended, and waits for it to finish.
    /// </summary>
    public async Task<PeerConnectionEnd> CloseAsync(string reason = "this node closed the connection")
    {
        var completion = Completion;
        if (Interlocked.CompareExchange(ref _closeReason, reason, null) is null && End is null)
        {
            await SayGoodbyeAsync(reason);
            TryEnd(new PeerConnectionEnd(PeerConnectionEndReason.LocalShutdown, reason));
        }

        return await completion;
    }

    /// <summary>Closes the connection if it was started; before <see cref="Start"/> the transport is still the caller's.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_run is not null)
        {
            await CloseAsync("the connection was disposed");
        }
    }

    private async Task<PeerConnectionEnd> RunAsync()
    {
        var keepalive = KeepaliveLoopAsync();
        var received = await ReceiveLoopAsync();
        if (received.Reason == PeerConnectionEndReason.RemoteClosed && Volatile.Read(ref _closeReason) is { } closeReason)
        {
            // The peer hung up in answer to our Goodbye, possibly before CloseAsync recorded the end.
            received = new PeerConnectionEnd(PeerConnectionEndReason.LocalShutdown, closeReason);
        }

        if (received.Reason == PeerConnectionEndReason.ProtocolError && End is null)
        {
            await SayGoodbyeAsync($"this node received a frame it cannot accept: {received.Message}");
        }

        TryEnd(received);
        await keepalive;

        ReleaseHandlerHold();
        await _handlersDrained.Task;
        await CompleteTransportAsync();

        var end = End!;
        if (end.Reason is PeerConnectionEndReason.LocalShutdown or PeerConnectionEndReason.RemoteClosed)
        {
            Log.ConnectionClosed(_logger, PeerName, end.Reason, end.Message);
        }
        else
        {
            Log.ConnectionFailed(_logger, PeerName, end.Reason, end.Message, end.Exception);
        }

        return end;
    }

    /// <summary>Records how the connection ended, if it had not already, and stops everything that is waiting.</summary>
    private bool TryEnd(PeerConnectionEnd end)
    {
        if (Interlocked.CompareExchange(ref _end, end, null) is not null)
        {
            return false;
        }

        // First of all: from here on this node serves no paired read and promises nothing more.
        ReadLease.Close();
        _closing.Cancel();
        PipeWake.Read(_transport.Input);
        FailPendingRequests(end);
        return true;
    }

    private PeerConnectionClosedException ClosedException() => new(PeerName, End!);

    internal void ReleaseReceiveWindow(long bytes) => _receiveWindow.Release(bytes);

    private void ReleaseHandlerHold()
    {
        if (Interlocked.Decrement(ref _handlersRunning) == 0)
        {
            _handlersDrained.TrySetResult();
        }
    }

    /// <summary>Completes the pipes once no sender can touch the output again: the send lock is taken for good.</summary>
    private async Task CompleteTransportAsync()
    {
        await _sendLock.WaitAsync();
        try
        {
            await _transport.Output.CompleteAsync();
        }
        catch (Exception exception) when (exception is IOException or System.Net.Sockets.SocketException or ObjectDisposedException)
        {
            // The end is already recorded; what was still buffered for a peer that is gone is dropped.
        }

        await _transport.Input.CompleteAsync();
    }
}

using System.Net;
using Replicator.Core.Replication;
using Replicator.Node.Configuration;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Node.Replication;

/// <summary>
/// Keeps this node connected to its peer: dials it (the node whose configuration has
/// <c>peer.address</c>) or accepts it (<c>peer.listen</c>), runs the handshake, and hands each
/// established connection to the <see cref="ReplicationManager"/> until it ends.
/// </summary>
/// <remarks>
/// Reconnects back off. A peer that cannot be reached is dialled again every 200 ms to 1 s (a
/// refused connection costs nothing, and a restarted peer is found quickly). A link that keeps
/// dying young (flapping, as a faulty HBA firmware resetting in a loop) is given 1 s doubling to
/// 10 s before the next attempt, back to the short delay once a connection has lived for a
/// minute: a flapping link costs a few reconnects a minute, not a reconnect storm, and each
/// resync resumes from the bitmap rather than starting over.
/// </remarks>
internal sealed partial class PeerLink(
    NodeConfig config,
    ReplicationManager manager,
    ILogger<PeerLink> logger,
    ILoggerFactory loggerFactory) : BackgroundService
{
    private static readonly TimeSpan MinBackoff = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan MaxDialBackoff = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan FlapBackoff = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxFlapBackoff = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan HealthyLifetime = TimeSpan.FromMinutes(1);

    private readonly PeerConfig _peer = config.Peer!;
    private readonly ILogger _connectionLogger = loggerFactory.CreateLogger<PeerConnection>();
    private readonly Lock _lock = new();
    private PeerConnection? _current;
    private Task _currentRun = Task.CompletedTask;
    private TimeSpan _backoff = MinBackoff;
    private TimeSpan _flapBackoff = TimeSpan.Zero;

    /// <summary>Number of connections established so far (status and flapping tests read it).</summary>
    public int ConnectCount { get; private set; }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        _peer.Address is not null ? DialLoopAsync(IPEndPoint.Parse(_peer.Address), stoppingToken) : AcceptLoopAsync(IPEndPoint.Parse(_peer.Listen!), stoppingToken);

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        PeerConnection? current;
        lock (_lock)
        {
            current = _current;
        }

        if (current is not null)
        {
            await current.CloseAsync($"node {config.Name} is shutting down");
        }

        await base.StopAsync(cancellationToken);
    }

    private async Task DialLoopAsync(IPEndPoint address, CancellationToken ct)
    {
        var failures = 0;
        while (!ct.IsCancellationRequested)
        {
            PeerSocketTransport transport;
            try
            {
                transport = await PeerTransport.ConnectAsync(address, TimeSpan.FromSeconds(2), ct);
            }
            catch (PeerConnectException e)
            {
                if (failures++ % 20 == 0)
                {
                    LogDialFailed(_peer.Name, address.ToString(), e.Message);
                }

                _backoff = TimeSpan.FromTicks(Math.Min(MaxDialBackoff.Ticks, _backoff.Ticks * 2));
                await DelayAsync(_backoff + _flapBackoff, ct);
                continue;
            }

            failures = 0;
            _backoff = MinBackoff;
            var lived = await RunConnectionAsync(transport, dialed: true, ct);
            _flapBackoff = lived >= HealthyLifetime ? TimeSpan.Zero
                : _flapBackoff == TimeSpan.Zero ? FlapBackoff
                : TimeSpan.FromTicks(Math.Min(MaxFlapBackoff.Ticks, _flapBackoff.Ticks * 2));
            await DelayAsync(MinBackoff + _flapBackoff, ct);
        }
    }

    private async Task AcceptLoopAsync(IPEndPoint listen, CancellationToken ct)
    {
        await using var listener = PeerListener.Start(listen);
        LogListening(listen.ToString(), _peer.Name);
        try
        {
            await AcceptConnectionsAsync(listener, ct);
        }
        finally
        {
            await _currentRun;
        }
    }

    private async Task AcceptConnectionsAsync(PeerListener listener, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            PeerSocketTransport transport;
            try
            {
                transport = await listener.AcceptAsync(ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            // A new connection from the peer means the old one is dead (the peer restarted, or the
            // link broke without either side noticing yet): end the old one before serving the new.
            PeerConnection? old;
            lock (_lock)
            {
                old = _current;
            }

            if (old is not null)
            {
                await old.CloseAsync("the peer connected again");
            }

            await _currentRun;
            _currentRun = RunConnectionAsync(transport, dialed: false, ct);
        }
    }

    /// <summary>Handshake, attach to the replication manager, wait for the end, detach. Returns how long the connection lived.</summary>
    private async Task<TimeSpan> RunConnectionAsync(PeerSocketTransport transport, bool dialed, CancellationToken ct)
    {
        var started = DateTime.UtcNow;
        await using var _ = transport;
        PeerHandshakeResult handshake;
        var hello = manager.CreateHello();
        try
        {
            handshake = await PeerHandshake.RunAsync(transport, hello, transport.Name, PeerHandshake.DefaultTimeout, logger, ct);
        }
        catch (PeerHandshakeException e)
        {
            LogHandshakeFailed(_peer.Name, e.Message);
            return TimeSpan.Zero;
        }
        catch (OperationCanceledException)
        {
            return TimeSpan.Zero;
        }

        var connection = new PeerConnection(transport, manager, _peer.ConnectionOptions, _connectionLogger, handshake.Peer.NodeName);
        lock (_lock)
        {
            _current = connection;
        }

        manager.BeginAttach(connection, handshake.Hello, dialed);
        connection.Start();
        ConnectCount++;
        LogConnected(handshake.Peer.NodeName, transport.Name, dialed ? "dialed" : "accepted");
        try
        {
            await manager.AttachAsync(connection, hello, handshake.Hello, dialed, ct);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Whatever went wrong pairing, this connection is no use: drop it and try again later.
            LogAttachFailed(handshake.Peer.NodeName, e.Message);
            await connection.CloseAsync($"pairing failed: {e.Message}");
        }

        var end = await connection.Completion;
        lock (_lock)
        {
            if (_current == connection)
            {
                _current = null;
            }
        }

        await manager.DetachAsync(connection, end);
        var lived = DateTime.UtcNow - started;
        LogDisconnected(handshake.Peer.NodeName, end.ToString(), lived.TotalSeconds);
        await connection.DisposeAsync();
        return lived;
    }

    private static async Task DelayAsync(TimeSpan delay, CancellationToken ct)
    {
        try
        {
            await Task.Delay(delay + TimeSpan.FromMilliseconds(Random.Shared.Next(50)), ct);
        }
        catch (OperationCanceledException)
        {
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Listening for peer {Peer} on {Address}")]
    private partial void LogListening(string address, string peer);

    [LoggerMessage(Level = LogLevel.Information, Message = "Cannot reach peer {Peer} at {Address}: {Reason} (retrying with backoff)")]
    private partial void LogDialFailed(string peer, string address, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Handshake with peer {Peer} failed: {Reason}")]
    private partial void LogHandshakeFailed(string peer, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Connected to peer {Peer} at {Address} ({Direction})")]
    private partial void LogConnected(string peer, string address, string direction);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Pairing volumes with peer {Peer} was cut short: {Reason}")]
    private partial void LogAttachFailed(string peer, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Disconnected from peer {Peer}: {End} after {Seconds:0.0} s")]
    private partial void LogDisconnected(string peer, string end, double seconds);
}

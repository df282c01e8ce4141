using System.Net;
using System.Net.Sockets;
using Replicator.Node.Configuration;
using Replicator.Node.Hosting;
using Replicator.Node.Security;
using Replicator.Protocol.Peer;

namespace Replicator.Node.Replication;

/// <summary>
/// Keeps this node connected to its peer: dials it (the node whose configuration has
/// <c>peer.address</c>) or accepts it (<c>peer.listen</c>), authenticates it
/// (<see cref="PeerSecureHandshake"/>), and hands each established connection to the
/// <see cref="ReplicationManager"/> until it ends.
/// </summary>
/// <remarks>
/// <para><b>Nobody unauthenticated disturbs the link.</b> Every connection to the peer port is a
/// stranger until its TLS handshake proved it is the configured peer: it runs on its own, beside the
/// live link, and only once it has authenticated does it replace the live link (a peer that
/// authenticates again has restarted, or lost the old connection without noticing). A stranger
/// that sends nothing, garbage or the wrong certificate is refused and counted; the live link and its
/// connect count never notice. At most <see cref="MaxPendingHandshakes"/> handshakes run at once,
/// each for at most <see cref="PeerHandshake.DefaultTimeout"/>; connections beyond that are closed at
/// once, so a flood costs a few sockets, not memory, and delays the real peer's reconnect by at most
/// one timeout.</para>
/// <para><b>Revocation.</b> The revocation list is read at every handshake, and every
/// <see cref="RevocationCheckInterval"/> for the link up now: revoking the peer cuts it off.</para>
/// <para><b>Reconnects back off.</b> A peer that cannot be reached is dialled again every 200 ms to
/// 1 s (a refused connection costs nothing, and a restarted peer is found quickly). A link that keeps
/// dying young (flapping, as a faulty HBA firmware resetting in a loop) is given 1 s doubling to 10 s
/// before the next attempt, back to the short delay once a connection has lived for a minute: a
/// flapping link costs a few reconnects a minute, not a reconnect storm, and each resync resumes from
/// the bitmap rather than starting over.</para>
/// </remarks>
internal sealed partial class PeerLink : BackgroundService
{
    /// <summary>Connections on the peer port allowed in their handshake at once.</summary>
    public const int MaxPendingHandshakes = 4;

    private static readonly TimeSpan MinBackoff = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan MaxDialBackoff = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan FlapBackoff = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxFlapBackoff = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan HealthyLifetime = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan RevocationCheckInterval = TimeSpan.FromSeconds(2);

    private readonly NodeConfig _config;
    private readonly PeerConfig _peer;
    private readonly PeerLinkSecurity _security;
    private readonly ReplicationManager _manager;
    private readonly ILogger _logger;
    private readonly ILoggerFactory _loggerFactory;
    private readonly LogThrottle _refusalLog = new(10, TimeSpan.FromSeconds(10));
    private readonly SemaphoreSlim _handshakeSlots = new(MaxPendingHandshakes, MaxPendingHandshakes);
    private readonly SemaphoreSlim _replacing = new(1, 1);
    private readonly Lock _lock = new();
    private readonly HashSet<Task> _handshakes = [];
    private (PeerConnection Connection, AuthenticatedPeer Peer)? _current;
    private Task _currentRun = Task.CompletedTask;
    private TimeSpan _backoff = MinBackoff;
    private TimeSpan _flapBackoff = TimeSpan.Zero;

    public PeerLink(NodeConfig config, NodeSecurity security, ReplicationManager manager, ILogger<PeerLink> logger, ILoggerFactory loggerFactory)
    {
        _config = config;
        _peer = config.Peer!;
        _manager = manager;
        _security = security.ForPeer(_peer, manager.AnnouncementProblem);
        _logger = logger;
        _loggerFactory = loggerFactory;
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _ = WatchRevocationsAsync(stoppingToken);
        return _peer.Address is not null ? DialLoopAsync(IPEndPoint.Parse(_peer.Address), stoppingToken) : AcceptLoopAsync(IPEndPoint.Parse(_peer.Listen!), stoppingToken);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        PeerConnection? current;
        lock (_lock)
        {
            current = _current?.Connection;
        }

        if (current is not null)
        {
            await current.CloseAsync($"node {_config.Name} is shutting down");
        }

        await base.StopAsync(cancellationToken);
    }

    private async Task DialLoopAsync(IPEndPoint address, CancellationToken ct)
    {
        var failures = 0;
        while (!ct.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await PeerTransport.ConnectAsync(address, TimeSpan.FromSeconds(2), ct);
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
            catch (OperationCanceledException)
            {
                return;
            }

            failures = 0;
            _backoff = MinBackoff;
            var lived = TimeSpan.Zero;
            if (await AuthenticateAsync(socket, dialed: true, ct) is { } peer)
            {
                lived = await RunConnectionAsync(peer, dialed: true, ct);
            }

            _flapBackoff = lived >= HealthyLifetime ? TimeSpan.Zero
                : _flapBackoff == TimeSpan.Zero ? FlapBackoff
                : TimeSpan.FromTicks(Math.Min(MaxFlapBackoff.Ticks, _flapBackoff.Ticks * 2));
            await DelayAsync(MinBackoff + _flapBackoff, ct);
        }
    }

    private async Task AcceptLoopAsync(IPEndPoint listen, CancellationToken ct)
    {
        await using var listener = PeerListener.Start(listen);
        LogListening(listen.ToString(), _peer.Name, _security.WantEncryption ? "encrypted" : "authenticated, encrypted only if the peer asks");
        try
        {
            await AcceptConnectionsAsync(listener, ct);
        }
        finally
        {
            Task[] handshakes;
            lock (_lock)
            {
                handshakes = [.. _handshakes];
            }

            await Task.WhenAll(handshakes);
            await _currentRun;
        }
    }

    /// <summary>
    /// Accepts connections and authenticates each on its own, beside the live link (see the remarks);
    /// a connection beyond <see cref="MaxPendingHandshakes"/> is closed at once.
    /// </summary>
    private async Task AcceptConnectionsAsync(PeerListener listener, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (SocketException e)
            {
                // Out of file descriptors, say: the listener stays, and tries again in a moment.
                Refused($"accepting a connection failed: {e.Message} ({e.SocketErrorCode})");
                await DelayAsync(MinBackoff, ct);
                continue;
            }

            if (!_handshakeSlots.Wait(0))
            {
                var address = socket.RemoteEndPoint?.ToString() ?? "an unknown address";
                socket.Dispose();
                Refused($"a connection from {address} was closed at once: {MaxPendingHandshakes} connections are in their handshake already");
                continue;
            }

            var handshake = AuthenticateThenServeAsync(socket, ct);
            lock (_lock)
            {
                _handshakes.Add(handshake);
            }

            _ = handshake.ContinueWith(done =>
            {
                lock (_lock)
                {
                    _handshakes.Remove(done);
                }
            }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    /// <summary>An accepted connection: authenticates it (holding a handshake slot), then lets it replace the live link.</summary>
    private async Task AuthenticateThenServeAsync(Socket socket, CancellationToken ct)
    {
        AuthenticatedPeer? peer;
        try
        {
            peer = await AuthenticateAsync(socket, dialed: false, ct);
        }
        finally
        {
            _handshakeSlots.Release();
        }

        if (peer is null)
        {
            return;
        }

        try
        {
            await _replacing.WaitAsync(ct);
        }
        catch (OperationCanceledException)
        {
            await peer.Transport.DisposeAsync();
            return;
        }

        try
        {
            // The peer proved who it is on a new connection: the old one is dead (the peer restarted, or
            // the link broke without either side noticing yet). End it before serving the new one.
            PeerConnection? old;
            lock (_lock)
            {
                old = _current?.Connection;
            }

            if (old is not null)
            {
                await old.CloseAsync("the peer connected again and authenticated");
            }

            await _currentRun;
            _currentRun = RunConnectionAsync(peer, dialed: false, ct);
        }
        finally
        {
            _replacing.Release();
        }
    }

    /// <summary>The secure handshake on a fresh connection; null (the refusal logged and counted, the socket closed) when it fails.</summary>
    private async Task<AuthenticatedPeer?> AuthenticateAsync(Socket socket, bool dialed, CancellationToken ct)
    {
        try
        {
            return await PeerSecureHandshake.RunAsync(socket, dialed, _security, _manager.CreateHello, PeerHandshake.DefaultTimeout, _logger, ct);
        }
        catch (PeerHandshakeException e)
        {
            Refused(e.Message);
            return null;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // One connection, whatever it did, never stops the link: it is refused like any other.
            Refused($"the handshake failed unexpectedly: {e.GetType().Name}: {e.Message}");
            socket.Dispose();
            return null;
        }
    }

    /// <summary>Attach to the replication manager, wait for the end, detach. Returns how long the connection lived.</summary>
    private async Task<TimeSpan> RunConnectionAsync(AuthenticatedPeer peer, bool dialed, CancellationToken ct)
    {
        var started = DateTime.UtcNow;
        await using var _ = peer.Transport;
        var name = peer.Handshake.Peer.NodeName;
        var options = _peer.ConnectionOptions with { PeerReceiveWindow = (long)Math.Min(peer.Handshake.Hello.ReceiveWindow, long.MaxValue) };
        var connection = new PeerConnection(peer.Transport, _manager, options, _loggerFactory.CreateLogger<PeerConnection>(), name);
        var protection = new LinkProtection(peer.Encrypted, peer.Serial, peer.Certificate.Id);
        lock (_lock)
        {
            _current = (connection, peer);
        }

        _manager.BeginAttach(connection, peer.Handshake.Hello, dialed);
        _manager.Security.LinkUp(protection);
        connection.Start();
        LogConnected(name, peer.Transport.Name, dialed ? "dialed" : "accepted",
            peer.Encrypted ? "encrypted (TLS 1.3)" : "authenticated, not encrypted", peer.Serial);
        try
        {
            await _manager.AttachAsync(connection, peer.LocalHello, peer.Handshake.Hello, dialed, ct);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Whatever went wrong pairing, this connection is no use: drop it and try again later.
            LogAttachFailed(name, e.Message);
            await connection.CloseAsync($"pairing failed: {e.Message}");
        }

        var end = await connection.Completion;
        lock (_lock)
        {
            if (_current?.Connection == connection)
            {
                _current = null;
            }
        }

        _manager.Security.LinkDown(protection);
        await _manager.DetachAsync(connection, end);
        var lived = DateTime.UtcNow - started;
        LogDisconnected(name, end.ToString(), lived.TotalSeconds);
        await connection.DisposeAsync();
        return lived;
    }

    /// <summary>Closes the live link when the revocation list now revokes the certificate the peer proved itself with.</summary>
    private async Task WatchRevocationsAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(RevocationCheckInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(ct))
            {
                (PeerConnection Connection, AuthenticatedPeer Peer)? current;
                lock (_lock)
                {
                    current = _current;
                }

                if (current is { } live && _security.Trust.Revocations.FindRevocation(live.Peer.Serial, live.Peer.Certificate.Id) is { } revoked)
                {
                    Refused($"the live link to {live.Peer.Certificate} is closed: its certificate (serial {live.Peer.Serial}) is no longer trusted: {revoked}");
                    await live.Connection.CloseAsync($"the certificate of node {live.Peer.Certificate.Name} is no longer trusted by node {_config.Name}");
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Counts a refused connection and logs why (a flood of them is summarized, not logged line by line).</summary>
    private void Refused(string reason)
    {
        _manager.Security.ConnectionRefused(reason);
        if (_refusalLog.TryEnter(out var suppressed))
        {
            LogRefused(_peer.Name, reason, suppressed > 0 ? $" ({suppressed} more refusals were not logged)" : "");
        }
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

    [LoggerMessage(Level = LogLevel.Information, Message = "Listening for peer {Peer} on {Address} (mutual TLS; the link stays {Protection})")]
    private partial void LogListening(string address, string peer, string protection);

    [LoggerMessage(Level = LogLevel.Information, Message = "Cannot reach peer {Peer} at {Address}: {Reason} (retrying with backoff)")]
    private partial void LogDialFailed(string peer, string address, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Peer link to {Peer}: refused: {Reason}{Suppressed}")]
    private partial void LogRefused(string peer, string reason, string suppressed);

    [LoggerMessage(Level = LogLevel.Information, Message = "Connected to peer {Peer} at {Address} ({Direction}, {Protection}; its certificate serial {Serial})")]
    private partial void LogConnected(string peer, string address, string direction, string protection, string serial);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Pairing volumes with peer {Peer} was cut short: {Reason}")]
    private partial void LogAttachFailed(string peer, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Disconnected from peer {Peer}: {End} after {Seconds:0.0} s")]
    private partial void LogDisconnected(string peer, string end, double seconds);
}

using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Net.Sockets;
using Replicator.Protocol.Nbd;
using Replicator.Protocol.Nbd.Client;

namespace Replicator.Node.Gateway;

internal enum PathState
{
    /// <summary>Not connected because no client is attached to the volume.</summary>
    Idle,
    /// <summary>The first connection attempt has not finished yet.</summary>
    Connecting,
    /// <summary>Connected: requests can go here.</summary>
    Up,
    /// <summary>Failed (connection lost, an I/O error, a timeout) or never reached; reconnecting with backoff.</summary>
    Failed,
}

/// <summary>
/// One volume's way to one node: a few NBD connections to the node's export of the volume, kept open while the
/// node is reachable (a standby path is connected too, so a failover needs no connect) and re-established with
/// backoff when they are lost. <see cref="State"/> and the failure fields change only under the volume's lock;
/// the connections are read without it on the request path.
/// </summary>
internal sealed class GatewayPath
{
    private readonly GatewayVolume _volume;
    private readonly GatewayOptions _options;
    private readonly ILogger _logger;
    private NbdClient[]? _clients;
    private NodeVolumeView? _view;

    public GatewayPath(GatewayVolume volume, GatewayNode node, int index, GatewayOptions options, ILogger logger)
    {
        _volume = volume;
        Node = node;
        Index = index;
        _options = options;
        _logger = logger;
    }

    public GatewayNode Node { get; }

    /// <summary>Position among the volume's paths (bit of a request's "answered with an error" mask).</summary>
    public int Index { get; }

    public PathState State { get; set; } = PathState.Idle;

    /// <summary>What the node's admin API last said about the volume; null when it could not be asked.</summary>
    public NodeVolumeView? View
    {
        get => Volatile.Read(ref _view);
        set => Volatile.Write(ref _view, value);
    }

    public string? LastFailure { get; set; }

    public DateTimeOffset? LastFailureAt { get; set; }

    /// <summary><see cref="Stopwatch"/> timestamp of the last failure; 0 when the path never failed.</summary>
    public long LastFailureTimestamp { get; set; }

    /// <summary>Failures without a stretch of <see cref="GatewayOptions.HoldDown"/> up in between; sets the reconnect delay.</summary>
    public int FailuresInARow { get; set; }

    public long UpSinceTimestamp { get; set; }

    public NbdClient[]? Clients
    {
        get => Volatile.Read(ref _clients);
        set => Volatile.Write(ref _clients, value);
    }

    /// <summary>The open connection with fewer requests in flight; false when none is open.</summary>
    public bool TryPick([NotNullWhen(true)] out NbdClient? client)
    {
        client = null;
        var clients = Clients;
        if (clients is null)
        {
            return false;
        }

        foreach (var candidate in clients)
        {
            if (candidate.IsOpen && (client is null || candidate.InFlightCount < client.InFlightCount))
            {
                client = candidate;
            }
        }

        return client is not null;
    }

    public bool Owns(NbdClient client) => Clients is { } clients && Array.IndexOf(clients, client) >= 0;

    public int InFlight => Clients?.Sum(c => c.InFlightCount) ?? 0;

    /// <summary>The start of the oldest request in flight on any connection of the path.</summary>
    public long? OldestInFlightStarted()
    {
        long? oldest = null;
        foreach (var client in Clients ?? [])
        {
            if (client.OldestInFlightStarted() is { } started && (oldest is null || started < oldest))
            {
                oldest = started;
            }
        }

        return oldest;
    }

    /// <summary>
    /// Keeps the path connected until <paramref name="stopping"/>: connects, hands the connections to the volume,
    /// waits for any of them to end (or for the volume to fail the path, which ends them), then reconnects after
    /// a delay that doubles with each failure in a row. Once stopped, what this run reports is ignored.
    /// </summary>
    public async Task RunAsync(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            NbdClient[] clients;
            try
            {
                clients = await ConnectAsync(stopping);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception exception) when (exception is IOException or SocketException)
            {
                _volume.OnConnectFailed(this, exception.Message, stopping);
                await DelayAsync(stopping);
                continue;
            }

            _volume.OnPathUp(this, clients, stopping);
            try
            {
                var ended = await Task.WhenAny(clients.Select(c => c.Closed)).WaitAsync(stopping);
                var lost = await ended;
                _volume.OnPathFailed(this, clients[0], $"connection lost: {lost.Detail}");
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                await Task.WhenAll(clients.Select(c => c.DisconnectAsync()));
                return;
            }

            foreach (var client in clients)
            {
                client.Abort("another connection of the path ended");
            }

            await DelayAsync(stopping);
        }
    }

    private async Task<NbdClient[]> ConnectAsync(CancellationToken stopping)
    {
        // The gateway forwards its clients' requests as they come, so it cannot promise the node any alignment.
        var options = new NbdClientOptions
        {
            RequestBlockSizes = false,
            TlsMode = Node.Tls is null ? NbdTlsMode.Off : NbdTlsMode.Required,
            TlsAuthentication = Node.Tls,
        };
        var uri = Node.VolumeUri(_volume.Name);
        var attempts = Enumerable.Range(0, _options.ConnectionsPerNode)
            .Select(i => NbdClient.ConnectAsync(uri, _logger, options, $"{Node.Name}:{_volume.Name}#{i + 1}", stopping))
            .ToList();
        try
        {
            return await Task.WhenAll(attempts);
        }
        catch
        {
            foreach (var attempt in attempts.Where(a => a.IsCompletedSuccessfully))
            {
                attempt.Result.Abort("another connection of the path could not be made");
            }

            throw;
        }
    }

    private async Task DelayAsync(CancellationToken stopping)
    {
        var shift = Math.Clamp(FailuresInARow - 1, 0, 16);
        var delay = TimeSpan.FromTicks(Math.Min(_options.MinReconnectDelay.Ticks << shift, _options.MaxReconnectDelay.Ticks));
        try
        {
            await Task.Delay(delay, stopping);
        }
        catch (OperationCanceledException)
        {
        }
    }
}

using Replicator.Node.Admin;
using Replicator.Node.Cli;

namespace Replicator.Node.Gateway;

/// <summary>
/// The gateway's background work: asks every node's admin API for its volumes (which volumes exist, their size,
/// preferred node and replication state) every <see cref="GatewayOptions.PollInterval"/>, creates and removes
/// <see cref="GatewayVolume"/>s to match, feeds them what the nodes report, and runs the timeout watchdog.
/// </summary>
internal sealed class GatewayService : IHostedService, IAsyncDisposable
{
    private readonly IReadOnlyList<GatewayNode> _nodes;
    private readonly GatewayCatalog _catalog;
    private readonly GatewayOptions _options;
    private readonly ILogger _logger;
    private readonly Dictionary<GatewayNode, AdminClient> _admins;
    private readonly Dictionary<GatewayNode, string?> _adminErrors = [];
    private readonly SemaphoreSlim _pollLock = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _loops = [];

    public GatewayService(IReadOnlyList<GatewayNode> nodes, string token, GatewayCatalog catalog, GatewayOptions options, ILogger<GatewayService> logger)
    {
        _nodes = nodes;
        _catalog = catalog;
        _options = options;
        _logger = logger;
        _admins = nodes.ToDictionary(n => n, n => new AdminClient(n.Admin, token, options.Timeout));
        catalog.Refresh = () => PollAsync(_stopping.Token);
    }

    public IReadOnlyList<GatewayNode> Nodes => _nodes;

    /// <summary>Polls once, so the volumes are known before the NBD server starts, then keeps polling and watching.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await PollAsync(cancellationToken);
        _loops.Add(Task.Run(() => PollLoopAsync(_stopping.Token), CancellationToken.None));
        _loops.Add(Task.Run(() => WatchdogLoopAsync(_stopping.Token), CancellationToken.None));
        GatewayLog.Ready(_logger, _catalog.Volumes.Count, string.Join(", ", _nodes.Select(n => n.Name)),
            _options.Timeout.TotalSeconds, _options.HoldDown.TotalSeconds, _options.ConnectionsPerNode);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        await Task.WhenAll(_loops);
        foreach (var volume in _catalog.Volumes)
        {
            if (_catalog.TryRemove(volume.Name, out _))
            {
                await volume.DisposeAsync();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stopping.IsCancellationRequested)
        {
            await StopAsync(CancellationToken.None);
        }

        foreach (var admin in _admins.Values)
        {
            admin.Dispose();
        }

        _stopping.Dispose();
    }

    public List<GatewayNodeStatus> DescribeNodes()
    {
        lock (_adminErrors)
        {
            return [.. _nodes.Select(n => new GatewayNodeStatus(n.Name, n.Nbd.ToString(), n.Admin.ToString(),
                _adminErrors.TryGetValue(n, out var error) && error is null, _adminErrors.GetValueOrDefault(n)))];
        }
    }

    /// <summary>Asks every node for its volumes and brings the volumes up to date with the answers.</summary>
    public async Task PollAsync(CancellationToken cancellationToken)
    {
        await _pollLock.WaitAsync(cancellationToken);
        try
        {
            var answers = await Task.WhenAll(_nodes.Select(n => AskAsync(n, cancellationToken)));
            var reports = _nodes.Zip(answers).ToList();
            foreach (var name in reports.SelectMany(r => r.Second ?? []).Select(v => v.Name).Distinct(StringComparer.Ordinal))
            {
                if (!_catalog.TryGet(name, out _))
                {
                    var first = reports.SelectMany(r => r.Second ?? []).First(v => v.Name == name);
                    var volume = new GatewayVolume(name, _nodes, NodeVolumeView.From(first), _options, _logger);
                    _catalog.TryAdd(volume);
                    GatewayLog.VolumeAdded(_logger, name, first.SizeBytes, volume.PreferredNode ?? "(unknown)");
                }
            }

            foreach (var volume in _catalog.Volumes)
            {
                foreach (var (node, listed) in reports)
                {
                    var info = listed?.FirstOrDefault(v => v.Name == volume.Name);
                    volume.UpdateView(node, info is null ? null : NodeVolumeView.From(info));
                }

                if (reports.All(r => r.Second is { } list && list.All(v => v.Name != volume.Name)) && _catalog.TryRemove(volume.Name, out _))
                {
                    GatewayLog.VolumeRemoved(_logger, volume.Name);
                    await volume.DisposeAsync();
                }
            }
        }
        finally
        {
            _pollLock.Release();
        }
    }

    private async Task<List<VolumeInfo>?> AskAsync(GatewayNode node, CancellationToken cancellationToken)
    {
        string? error = null;
        List<VolumeInfo>? volumes = null;
        try
        {
            volumes = await _admins[node].GetAsync<List<VolumeInfo>>("/volumes", cancellationToken);
        }
        catch (Exception exception) when (exception is CliException or System.Text.Json.JsonException or HttpRequestException)
        {
            error = exception.Message;
        }

        lock (_adminErrors)
        {
            var known = _adminErrors.TryGetValue(node, out var previous);
            _adminErrors[node] = error;
            if (error is not null && (!known || previous is null))
            {
                GatewayLog.AdminUnreachable(_logger, node.Name, error);
            }
            else if (error is null && known && previous is not null)
            {
                GatewayLog.AdminReachable(_logger, node.Name);
            }
        }

        return volumes;
    }

    private async Task PollLoopAsync(CancellationToken stopping)
    {
        using var timer = new PeriodicTimer(_options.PollInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(stopping))
            {
                await PollAsync(stopping);
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
    }

    private async Task WatchdogLoopAsync(CancellationToken stopping)
    {
        using var timer = new PeriodicTimer(_options.WatchdogInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(stopping))
            {
                foreach (var volume in _catalog.Volumes)
                {
                    volume.Tick();
                }
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
    }
}

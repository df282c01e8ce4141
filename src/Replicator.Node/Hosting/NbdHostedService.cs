using System.Net;
using System.Net.Sockets;
using Replicator.Node.Configuration;
using Replicator.Protocol.Nbd;

namespace Replicator.Node.Hosting;

/// <summary>Runs an <see cref="NbdServer"/> for the lifetime of the host: bound at start, drained at stop.</summary>
internal sealed class NbdHostedService(
    INbdExportCatalog catalog,
    IReadOnlyList<EndPoint> endPoints,
    NbdServerOptions options,
    ILoggerFactory loggerFactory,
    Action<IReadOnlyList<EndPoint>>? bound = null) : IHostedService, IAsyncDisposable
{
    private readonly NbdServer _server = new(catalog, loggerFactory, options);

    /// <summary>The NBD end points a node's configuration names: TCP (if any) and the Unix socket.</summary>
    public static IReadOnlyList<EndPoint> Endpoints(NodeConfig config, string directory)
    {
        var list = new List<EndPoint>();
        if (config.NbdListen.Length > 0)
        {
            list.Add(IPEndPoint.Parse(config.NbdListen));
        }

        list.Add(new UnixDomainSocketEndPoint(config.SocketPath(directory)));
        return list;
    }

    public IReadOnlyList<EndPoint> BoundEndPoints => _server.EndPoints;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _server.Start(endPoints);
        bound?.Invoke(_server.EndPoints);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => _server.StopAsync(cancellationToken);

    public ValueTask DisposeAsync() => _server.DisposeAsync();
}

using System.Net;
using System.Text.Json;
using Replicator.Core.Storage;
using Replicator.Node.Cluster;
using Replicator.Node.Configuration;

namespace Replicator.Node.Gateway;

/// <summary>
/// <c>DIR/gateway.json</c> of a cluster directory: where the gateway listens. Written at the first start (ports
/// chosen then are kept, like the nodes' in node.json), read at every start, the same whether the gateway was
/// started by <c>cluster up</c> or by hand with <c>gateway --cluster DIR</c>.
/// </summary>
internal sealed record GatewayConfig
{
    public const string FileName = "gateway.json";

    /// <summary>Unix socket of the gateway's NBD server, relative to the cluster directory.</summary>
    public string NbdSocket { get; init; } = "gateway.sock";

    /// <summary>Loopback TCP endpoint of the gateway's NBD server (address:port); empty for the Unix socket only.</summary>
    public string NbdListen { get; init; } = "";

    /// <summary>TLS on the TCP end point (its certificate in the cluster's <c>tls/gateway</c>), the Unix socket's group, the connection caps.</summary>
    public NbdConfig Nbd { get; init; } = new();

    /// <summary>The gateway's status endpoint (<c>GET /api/v1/gateway</c>), loopback, same bearer token as the nodes.</summary>
    public string AdminListen { get; init; } = "127.0.0.1:0";

    public static GatewayConfig? TryLoad(string directory)
    {
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            var config = JsonSerializer.Deserialize<GatewayConfig>(File.ReadAllText(path), NodeConfig.JsonOptions)
                ?? throw new ConfigurationException($"{path} is empty");
            config.Validate(path);
            return config;
        }
        catch (JsonException e)
        {
            throw new ConfigurationException($"{path} is not valid gateway configuration: {e.Message}");
        }
    }

    /// <summary>The configuration of the cluster's gateway; on first use, TCP and admin ports free now, kept from then on.</summary>
    public static GatewayConfig EnsureForCluster(string directory)
    {
        if (TryLoad(directory) is { } existing)
        {
            return existing;
        }

        var config = new GatewayConfig
        {
            NbdListen = $"127.0.0.1:{ClusterLayout.FreePort()}",
            AdminListen = $"127.0.0.1:{ClusterLayout.FreePort()}",
        };
        config.Save(directory);
        return config;
    }

    public void Save(string directory) => Save(PhysicalFileSystem.Instance, directory);

    /// <summary>Replaces the file atomically and durably: a crash leaves the old file or the new one.</summary>
    internal void Save(IFileSystem files, string directory)
    {
        var path = Path.Combine(directory, FileName);
        Validate(path);
        files.WriteAtomically(path, JsonSerializer.SerializeToUtf8Bytes(this, NodeConfig.JsonOptions));
    }

    public string SocketPath(string directory) => Path.GetFullPath(NbdSocket, directory);

    /// <summary>The TCP export's URI without an export name: <c>nbds://</c> when it requires TLS; null without one.</summary>
    public string? TcpUri => NbdListen.Length == 0 ? null : Nbd.TcpUri(NbdListen);

    public void Validate(string path)
    {
        if (NbdListen.Length > 0 && !IPEndPoint.TryParse(NbdListen, out _))
        {
            throw new ConfigurationException($"{path}: nbdListen '{NbdListen}' is not an address:port");
        }

        (Nbd ?? throw new ConfigurationException($"{path}: nbd must be an object, or be left out")).Validate(path, NbdListen);

        if (!IPEndPoint.TryParse(AdminListen, out _))
        {
            throw new ConfigurationException($"{path}: adminListen '{AdminListen}' is not an address:port");
        }
    }
}

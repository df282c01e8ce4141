using System.Net;
using System.Net.Sockets;
using Replicator.Core.Storage;
using Replicator.Node.Configuration;

namespace Replicator.Node.Cluster;

/// <summary>
/// The directory layout of an embedded cluster: <c>DIR/a</c> and <c>DIR/b</c> are ordinary node
/// directories (<c>node run --dir DIR/a</c> starts that node alone, exactly as <c>cluster up</c>
/// does), sharing a cluster id and one admin token file. Ports are chosen free at the first
/// start and kept in each node.json.
/// </summary>
internal static class ClusterLayout
{
    public static readonly string[] NodeNames = ["a", "b"];
    public const string TokenFileName = "admin.token";

    public const string WitnessDirectoryName = "witness";
    private const string WitnessConfigFileName = "witness.json";

    /// <summary>The witness's address, when the cluster has one.</summary>
    public static string? WitnessAddress(string directory)
    {
        var path = Path.Combine(directory, WitnessDirectoryName, WitnessConfigFileName);
        return File.Exists(path) ? System.Text.Json.JsonSerializer.Deserialize<WitnessConfig>(File.ReadAllText(path), NodeConfig.JsonOptions)?.Address : null;
    }

    /// <summary>Creates the node (and witness) configurations on first use; returns the nodes' (a, b).</summary>
    public static IReadOnlyList<(string Directory, NodeConfig Config)> Ensure(string directory, long poolSize, bool withWitness)
    {
        var existing = NodeNames.Select(n => (Dir: Path.Combine(directory, n), Config: NodeConfig.TryLoad(Path.Combine(directory, n)))).ToList();
        if (existing.All(e => e.Config is not null))
        {
            return existing.Select(e => (e.Dir, e.Config!)).ToList();
        }

        if (existing.Any(e => e.Config is not null))
        {
            throw new ConfigurationException($"{directory} holds only one of the two nodes' configurations; restore the other or use a new directory");
        }

        var clusterId = Guid.NewGuid();
        var bPeerPort = FreePort();
        var adminPorts = NodeNames.ToDictionary(n => n, _ => FreePort());
        WitnessConfig? witness = null;
        if (withWitness)
        {
            witness = new WitnessConfig { Address = $"127.0.0.1:{FreePort()}" };
            PhysicalFileSystem.Instance.CreateDirectory(Path.Combine(directory, WitnessDirectoryName));
            PhysicalFileSystem.Instance.WriteAtomically(Path.Combine(directory, WitnessDirectoryName, WitnessConfigFileName),
                System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(witness, NodeConfig.JsonOptions));
        }

        var configs = new List<(string, NodeConfig)>();
        foreach (var name in NodeNames)
        {
            var nodeDir = Path.Combine(directory, name);
            PhysicalFileSystem.Instance.CreateDirectory(nodeDir);
            var dials = name == "a";
            var config = new NodeConfig
            {
                Name = name,
                NodeId = Guid.NewGuid(),
                ClusterId = clusterId,
                NbdListen = $"127.0.0.1:{FreePort()}",
                AdminListen = $"127.0.0.1:{adminPorts[name]}",
                AdminTokenFile = Path.Combine("..", TokenFileName),
                PoolFileCapacity = poolSize,
                Witness = witness,
                Peer = new PeerConfig
                {
                    Name = dials ? "b" : "a",
                    Address = dials ? $"127.0.0.1:{bPeerPort}" : null,
                    Listen = dials ? null : $"127.0.0.1:{bPeerPort}",
                    Admin = $"http://127.0.0.1:{adminPorts[dials ? "b" : "a"]}",
                },
            };
            config.Save(nodeDir);
            configs.Add((nodeDir, config));
        }

        return configs;
    }

    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

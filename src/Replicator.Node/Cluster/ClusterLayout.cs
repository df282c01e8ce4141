using System.Net;
using System.Net.Sockets;
using Replicator.Core.Storage;
using Replicator.Node.Configuration;
using Replicator.Node.Security;
using Replicator.Protocol.Security;

namespace Replicator.Node.Cluster;

/// <summary>
/// The directory layout of an embedded cluster: <c>DIR/a</c> and <c>DIR/b</c> are ordinary node
/// directories (<c>node run --dir DIR/a</c> starts that node alone, exactly as <c>cluster up</c>
/// does), sharing a cluster id and one admin token file. Ports are chosen free at the first
/// start and kept in each node.json.
/// </summary>
/// <remarks>
/// <para>Certificates (made at the first start, kept after; see docs/security.md):</para>
/// <code>
/// DIR/tls/ca/          ca-cert.pem, ca-key.pem (0600)     the cluster's authority
/// DIR/tls/revoked.json                                     the revocation list every member reads
/// DIR/a/tls/, DIR/b/tls/, DIR/witness/tls/, DIR/tls/gateway/
///                      ca-cert.pem, server-cert.pem, server-key.pem
/// DIR/tls/admin/       ca-cert.pem, client-cert.pem, client-key.pem
/// DIR/tls/client/      ca-cert.pem, client-cert.pem, client-key.pem   an NBD client's (QEMU, libnbd): cluster.json names it
/// </code>
/// <para>Every directory holding a key is 0700. The certificates of the processes on loopback name
/// <c>localhost</c>, <c>127.0.0.1</c> and <c>::1</c>, so clients that check host names accept them too.</para>
/// </remarks>
internal static class ClusterLayout
{
    public static readonly string[] NodeNames = ["a", "b"];
    public const string TokenFileName = "admin.token";

    public const string WitnessDirectoryName = "witness";
    private const string WitnessConfigFileName = "witness.json";

    /// <summary>The cluster's TLS directory: the authority, the revocation list, the gateway's and the administrator's certificates.</summary>
    public const string TlsDirectoryName = "tls";

    public static string AuthorityDirectory(string directory) => Path.Combine(directory, TlsDirectoryName, "ca");

    public static string RevocationListPath(string directory) => Path.Combine(directory, TlsDirectoryName, TlsConfig.RevocationFileName);

    public static string WitnessTlsDirectory(string directory) => Path.Combine(directory, WitnessDirectoryName, TlsConfig.DefaultDirectory);

    public static string GatewayTlsDirectory(string directory) => Path.Combine(directory, TlsDirectoryName, "gateway");

    public static string AdminTlsDirectory(string directory) => Path.Combine(directory, TlsDirectoryName, "admin");

    /// <summary>The certificates an NBD client on this host attaches with (libnbd's <c>tls-certificates</c>, QEMU's <c>tls-creds-x509</c> dir).</summary>
    public static string ClientTlsDirectory(string directory) => Path.Combine(directory, TlsDirectoryName, "client");

    /// <summary>The host names and addresses the certificates of an embedded cluster's processes carry.</summary>
    private static readonly string[] LoopbackNames = ["localhost"];
    private static readonly IPAddress[] LoopbackAddresses = [IPAddress.Loopback, IPAddress.IPv6Loopback];

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
            var nodes = Upgrade(directory, existing.Select(e => (e.Dir, e.Config!)).ToList());
            EnsureCertificates(directory, nodes);
            return nodes;
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
                Tls = new TlsConfig { RevocationList = Path.Combine("..", TlsDirectoryName, TlsConfig.RevocationFileName) },
                Peer = new PeerConfig
                {
                    Name = dials ? "b" : "a",
                    Address = dials ? $"127.0.0.1:{bPeerPort}" : null,
                    Listen = dials ? null : $"127.0.0.1:{bPeerPort}",
                    Admin = $"http://127.0.0.1:{adminPorts[dials ? "b" : "a"]}",
                },
            };
            configs.Add((nodeDir, config));
        }

        configs = Upgrade(directory, configs);
        EnsureCertificates(directory, configs);
        return configs;
    }

    /// <summary>
    /// Fills in what a cluster made by an older release lacks, and saves it: each node names its peer's id
    /// (its certificate must carry it), and both read the cluster's one revocation list.
    /// </summary>
    private static List<(string Directory, NodeConfig Config)> Upgrade(string directory, List<(string Directory, NodeConfig Config)> nodes)
    {
        var ids = nodes.ToDictionary(n => n.Config.Name, n => n.Config.NodeId);
        var upgraded = new List<(string, NodeConfig)>();
        foreach (var (nodeDir, config) in nodes)
        {
            var updated = config with
            {
                Peer = config.Peer is { NodeId: null } peer && ids.TryGetValue(peer.Name, out var peerId) ? peer with { NodeId = peerId } : config.Peer,
                Tls = config.Tls.RevocationList is null
                    ? config.Tls with { RevocationList = Path.GetRelativePath(nodeDir, RevocationListPath(directory)) }
                    : config.Tls,
            };
            if (updated != config || !File.Exists(NodeConfig.PathIn(nodeDir)))
            {
                updated.Save(nodeDir);
            }

            upgraded.Add((nodeDir, updated));
        }

        return upgraded;
    }

    /// <summary>
    /// Issues, from the cluster's authority (created first if the cluster has none yet), every
    /// certificate the cluster lacks: the nodes', the witness's, the gateway's and the administrator's.
    /// Certificates already there are kept, so a restart never changes an identity.
    /// </summary>
    private static void EnsureCertificates(string directory, IReadOnlyList<(string Directory, NodeConfig Config)> nodes)
    {
        var clusterId = nodes[0].Config.ClusterId;
        var holders = nodes
            .Select(n => (Path: n.Config.Tls.DirectoryPath(n.Directory), Identity: new ClusterIdentity(IdentityRole.Node, n.Config.Name, n.Config.NodeId, clusterId)))
            .Append((Path: GatewayTlsDirectory(directory), Identity: new ClusterIdentity(IdentityRole.Gateway, "gateway", Guid.NewGuid(), clusterId)))
            .Append((Path: AdminTlsDirectory(directory), Identity: new ClusterIdentity(IdentityRole.Admin, "admin", Guid.NewGuid(), clusterId)))
            .Append((Path: ClientTlsDirectory(directory), Identity: new ClusterIdentity(IdentityRole.Client, "client", Guid.NewGuid(), clusterId)))
            .ToList();
        if (WitnessAddress(directory) is not null)
        {
            holders.Add((Path: WitnessTlsDirectory(directory), Identity: new ClusterIdentity(IdentityRole.Witness, "witness", Guid.NewGuid(), clusterId)));
        }

        var missing = holders.Where(h => !new TlsDirectory(h.Path, !CertificateIssuer.ServesTls(h.Identity.Role)).Exists).ToList();
        if (missing.Count == 0)
        {
            return;
        }

        var authorityDirectory = AuthorityDirectory(directory);
        if (!ClusterAuthority.Exists(authorityDirectory) && missing.Count < holders.Count)
        {
            throw new ConfigurationException(
                $"{authorityDirectory} holds no authority, yet some of the cluster's certificates exist: restore the authority to issue the missing ones ({string.Join(", ", missing.Select(m => m.Path))})");
        }

        using var authority = ClusterAuthority.Exists(authorityDirectory) ? ClusterAuthority.Open(authorityDirectory) : ClusterAuthority.Create(authorityDirectory, clusterId);
        if (authority.ClusterId != clusterId)
        {
            throw new ConfigurationException($"the authority in {authorityDirectory} belongs to cluster {authority.ClusterId}, the nodes to cluster {clusterId}");
        }

        SecureFiles.CreatePrivateDirectory(Path.Combine(directory, TlsDirectoryName));
        foreach (var (path, identity) in missing)
        {
            authority.IssueInto(path, identity, LoopbackNames, LoopbackAddresses).Dispose();
        }
    }

    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

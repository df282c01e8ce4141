using System.Text.Json;
using Replicator.Core.Storage;
using Replicator.Node.Configuration;

namespace Replicator.Node.Cluster;

/// <summary>
/// <c>DIR/cluster.json</c>: the machine-readable contract of <c>cluster up</c> — every endpoint, the
/// pids of the processes it started, the volumes. Fields are added over time, never renamed.
/// </summary>
internal sealed record ClusterManifest
{
    public const string FileName = "cluster.json";

    public required Guid ClusterId { get; init; }

    public required List<ClusterNodeEntry> Nodes { get; init; }

    public List<string> Volumes { get; init; } = [];

    /// <summary>The witness process, when the cluster has one.</summary>
    public ClusterProcessEntry? Witness { get; init; }

    /// <summary>Bearer token file shared by both nodes' admin APIs.</summary>
    public required string AdminTokenFile { get; init; }

    /// <summary>The certificates an NBD client attaches with over TCP (the exports there require TLS).</summary>
    public ClusterTlsEntry? Tls { get; init; }

    /// <summary>The gateway cluster up started: where hypervisors attach. Absent until it is up.</summary>
    public ClusterGatewayEntry? Gateway { get; init; }

    public static string PathIn(string directory) => Path.Combine(directory, FileName);

    public static ClusterManifest? TryLoad(string directory)
    {
        var path = PathIn(directory);
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize<ClusterManifest>(File.ReadAllText(path), NodeConfig.JsonOptions)
                ?? throw new ConfigurationException($"{path} is empty");
        }
        catch (JsonException e)
        {
            throw new ConfigurationException($"{path} is not a valid cluster manifest: {e.Message}");
        }
    }

    public void Save(string directory) => Save(PhysicalFileSystem.Instance, directory);

    /// <summary>Replaces cluster.json atomically and durably: a crash leaves the old file or the new one.</summary>
    internal void Save(IFileSystem files, string directory) =>
        files.WriteAtomically(PathIn(directory), JsonSerializer.SerializeToUtf8Bytes(this, NodeConfig.JsonOptions));
}

internal sealed record ClusterNodeEntry
{
    public required string Name { get; init; }

    public int? Pid { get; init; }

    /// <summary><c>nbds://127.0.0.1:PORT</c> (<c>nbd://</c> when configured without TLS); a volume is <c>{nbd}/{volume}</c>.</summary>
    public required string Nbd { get; init; }

    public required string NbdSocket { get; init; }

    public required string Admin { get; init; }

    public required string DataDir { get; init; }

    /// <summary>Where the node accepts or dials its peer.</summary>
    public required string Peer { get; init; }
}

internal sealed record ClusterGatewayEntry
{
    public int? Pid { get; init; }

    /// <summary>The gateway's Unix socket; a volume is <c>nbd+unix:///{volume}?socket={nbdSocket}</c>.</summary>
    public required string NbdSocket { get; init; }

    /// <summary><c>nbds://127.0.0.1:PORT</c> (<c>nbd://</c> when configured without TLS); a volume is <c>{nbd}/{volume}</c>.</summary>
    public required string Nbd { get; init; }

    /// <summary>Status endpoint base: <c>GET {admin}/api/v1/gateway</c> with the cluster's bearer token.</summary>
    public required string Admin { get; init; }
}

/// <summary>
/// The cluster's TLS material for NBD clients: <see cref="ClientCertificates"/> is a directory in the layout libnbd
/// (<c>tls-certificates=DIR</c>) and QEMU (<c>tls-creds-x509,dir=DIR</c>) read: ca-cert.pem, client-cert.pem, client-key.pem.
/// </summary>
internal sealed record ClusterTlsEntry(string ClientCertificates);

/// <summary>A helper process of the cluster (the witness).</summary>
internal sealed record ClusterProcessEntry(int? Pid, string Address);

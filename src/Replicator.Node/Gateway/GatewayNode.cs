using System.Net.Security;
using Replicator.Node.Admin;
using Replicator.Protocol.Nbd.Client;

namespace Replicator.Node.Gateway;

/// <summary>A storage node as the gateway reaches it: its NBD server (a volume is an export on it) and its admin API.</summary>
internal sealed record GatewayNode(string Name, NbdUri Nbd, Uri Admin)
{
    /// <summary>The TLS options the gateway dials the node's NBD server with, given its host; null for a plain Unix socket.</summary>
    public Func<string, SslClientAuthenticationOptions>? Tls { get; init; }

    public NbdUri VolumeUri(string volume) => Nbd.WithExport(volume);
}

/// <summary>What one node's admin API last said about one volume.</summary>
internal sealed record NodeVolumeView(string? PreferredNode, string Connection, string DiskState, long OutOfSyncBytes, long SizeBytes)
{
    /// <summary>Connected to its peer, up to date and with nothing left to resync: safe to move the volume's I/O to.</summary>
    public bool InSync => Connection == "connected" && DiskState == "up-to-date" && OutOfSyncBytes == 0;

    public static NodeVolumeView From(VolumeInfo info) => new(
        info.PreferredNode,
        info.Replication?.Connection ?? "standalone",
        info.Replication?.DiskState ?? "up-to-date",
        info.Replication?.OutOfSyncBytes ?? 0,
        info.SizeBytes);
}

namespace Replicator.Node.Gateway;

/// <summary><c>GET /api/v1/gateway</c>: the gateway's nodes and, per volume, where its I/O goes and why.</summary>
internal sealed record GatewayStatus(
    int Pid, string NbdSocket, string? NbdTcp, double TimeoutSeconds, double HoldDownSeconds, int ConnectionsPerNode,
    List<GatewayNodeStatus> Nodes, List<GatewayVolumeStatus> Volumes);

internal sealed record GatewayNodeStatus(string Name, string Nbd, string Admin, bool AdminReachable, string? AdminError);

/// <param name="ActiveNode">The node new requests go to; null while no node can serve.</param>
/// <param name="Switches">Moves from one node to the other since the gateway started.</param>
/// <param name="ReissuedRequests">Requests sent again on another path because theirs failed under them.</param>
/// <param name="AttachedClients">Client connections attached through the gateway; the paths are connected only while there are any.</param>
internal sealed record GatewayVolumeStatus(
    string Name, long SizeBytes, string? PreferredNode, string? ActiveNode, long Switches, GatewaySwitch? LastSwitch,
    long ReissuedRequests, int AttachedClients, List<GatewayPathStatus> Paths);

internal sealed record GatewaySwitch(DateTimeOffset At, string From, string To, string Reason);

/// <param name="State">idle (no client attached), connecting, up or failed.</param>
/// <param name="InSync">The node's admin API reports the volume connected, up to date and with nothing to resync.</param>
internal sealed record GatewayPathStatus(
    string Node, string State, int Connections, int InFlight, string? LastFailure, DateTimeOffset? LastFailureAt,
    int FailuresInARow, bool InSync, GatewayReplicaView? Replication);

internal sealed record GatewayReplicaView(string Connection, string DiskState, long OutOfSyncBytes);

namespace Replicator.Node.Admin;

/// <summary>The JSON shapes of the admin API (camelCase on the wire). The CLI reads the same types.</summary>
internal sealed record NodeInfo(string Name, Guid NodeId, Guid ClusterId, string Version, int Pid, string NbdTcp, string NbdSocket)
{
    public PeerInfo? Peer { get; init; }

    public string? Quorum { get; init; }
}

internal sealed record PeerInfo(string Name, bool Connected, string? Address, DateTimeOffset? ConnectedSince, int Connects)
{
    /// <summary>
    /// Whether this node holds the read lease now (its peer answered a Ping within the lease), so its paired
    /// replicas serve reads locally; while it does not, such reads wait for the next Pong or the link's end.
    /// </summary>
    public bool ReadLeaseHeld { get; init; }

    /// <summary>The lease each Ping asks for, in milliseconds; null while disconnected.</summary>
    public double? ReadLeaseMs { get; init; }

    /// <summary>Whether the link up now is encrypted (TLS 1.3); it is authenticated either way. Null while disconnected.</summary>
    public bool? Encrypted { get; init; }

    /// <summary>The serial number of the certificate the peer proved itself with on the link up now.</summary>
    public string? PeerCertificateSerial { get; init; }

    /// <summary>Connections to the peer port that did not authenticate since this node started (the live link never noticed them).</summary>
    public long RefusedConnections { get; init; }

    /// <summary>Requests of the peer refused since this node started because they did not fit the pairing.</summary>
    public long RefusedRequests { get; init; }

    /// <summary>Why the last connection was refused, and when.</summary>
    public string? LastRefusedConnection { get; init; }

    /// <summary>Why the last request was refused, and when.</summary>
    public string? LastRefusedRequest { get; init; }
}

internal sealed record PoolInfo(long CapacityBytes, long VirtualBytes, long AllocatedBytes, long FreeBytes, int Volumes, int ExtentSize)
{
    /// <summary>Whether every block is stored with a checksum and checked on read; false only for a reference measurement.</summary>
    public bool BlockChecksums { get; init; } = true;
}

internal sealed record VolumeInfo(string Name, Guid Id, long SizeBytes, long AllocatedBytes, int AllocationUnit, int AttachedClients)
{
    public string? PreferredNode { get; init; }

    /// <summary>Clients' I/O on this node over the last second.</summary>
    public Metrics.IoRates? Io { get; init; }

    public ReplicaInfo? Replication { get; init; }

    /// <summary>Blocks found failing their checksums on this node's replica and what became of them; null without block checksums.</summary>
    public IntegrityInfo? Integrity { get; init; }

    /// <summary>This replica's background scrub; null without block checksums.</summary>
    public ScrubInfo? Scrub { get; init; }
}

/// <summary>A volume's damaged blocks since the node started (see <c>IntegrityCounters</c>).</summary>
internal sealed record IntegrityInfo(long Detected, long Healed, long Unrecoverable, long Unverified, long Settled, IntegrityEventInfo? Last);

/// <summary>The last damaged block: where, on which node's replica, found by what, and what became of it.</summary>
internal sealed record IntegrityEventInfo(DateTimeOffset At, long Offset, string Replica, string Path, string Outcome);

/// <summary>Where a volume's scrub stands on this node.</summary>
/// <param name="State">idle, running, paused, or waiting (this replica is a resync target).</param>
internal sealed record ScrubInfo(string State, long DoneBytes, long TotalBytes, double BytesPerSecond, double? EtaSeconds,
    ScrubFindingsInfo Pass, ScrubFindingsInfo LastPass, DateTimeOffset? PassStarted, DateTimeOffset LastCompleted, DateTimeOffset? NextDue)
{
    /// <summary>Bytes per second the scrub may read (0: no cap).</summary>
    public long RateLimit { get; init; }
}

internal sealed record ScrubFindingsInfo(long ScannedBytes, long Detected, long Healed, long Unrecoverable);

/// <summary>One volume's replication state on this node.</summary>
/// <param name="Connection">connected, disconnected, standalone (no peer configured), or unpaired (split brain and the like).</param>
internal sealed record ReplicaInfo(
    string Connection,
    string DiskState,
    string Role,
    string? WritesOrderedBy,
    long OutOfSyncBytes,
    GenerationInfo Generation,
    ResyncInfo Resync,
    string? Problem)
{
    /// <summary>Why this replica's disk is detached: <c>failed</c> (an I/O error) or <c>pool-full</c>; null while attached.</summary>
    public string? Detached { get; init; }

    /// <summary>What leaves the pair degraded though paired (a disk failed or a pool is full, on either node), for people; null when nothing does.</summary>
    public string? Alert { get; init; }
}

internal sealed record GenerationInfo(string Current, string Bitmap, string[] History);

internal sealed record ResyncInfo(string State, long TotalBytes, long DoneBytes, long RemainingBytes, double BytesPerSecond, double? EtaSeconds, long SentBytes, int Completed)
{
    public long RateLimit { get; init; }

    public bool Adaptive { get; init; }

    public bool Checksum { get; init; }

    /// <summary>Bytes of volume brought in sync (sent, trimmed or found equal by checksum).</summary>
    public long CoveredBytes { get; init; }

    public long ComparedBytes { get; init; }
}

internal sealed record CreateVolumeRequest(string? Name, string? Size)
{
    public string? PreferredNode { get; init; }
}

internal sealed record ResizeVolumeRequest(string? Size);

internal sealed record PreferredNodeRequest(string? Node);

/// <summary>One node as <c>status --json</c> and <c>GET /api/v1/cluster</c> show it.</summary>
internal sealed record NodeStatus(string Name, string Admin, bool Reachable, string? Error, NodeInfo? Node, PoolInfo? Pool, List<VolumeInfo> Volumes);

/// <summary>The whole pair as one node sees it: itself, its peer (asked over the peer's admin API) and the witness.</summary>
internal sealed record ClusterView(List<NodeStatus> Nodes, WitnessStatus? Witness);

internal sealed record WitnessStatus(string Address, bool Reachable, string? Error, List<Witness.VoteInfo> Votes);

namespace Replicator.Core.Replication;

/// <summary>What happens to a volume's pairing; <see cref="PairingMachine.Next"/> answers each.</summary>
internal abstract record PairingEvent;

/// <summary>A new peer connection finished its handshake: a refusal of the previous one is forgotten.</summary>
internal sealed record LinkUp : PairingEvent;

/// <summary>
/// VolumeConnect: both sides' replica facts, read while the volume's writes wait (on the dialer when the
/// reply arrives, on the other node when the request does).
/// </summary>
/// <param name="LocalWinsTies">Breaks rule 43 of <see cref="SyncDecision"/>; the two nodes pass opposite values.</param>
/// <param name="LocalPreferred">This node is the volume's preferred node: it owns the writes when neither side resyncs the other.</param>
/// <param name="LocalOutOfSyncBytes">What this replica's bitmap marks now (for the text of a split brain).</param>
internal sealed record Connect(
    Guid Peer,
    string PeerName,
    string VolumeName,
    ReplicaStatus Local,
    ReplicaStatus PeerStatus,
    bool LocalWinsTies,
    bool LocalPreferred,
    long LocalOutOfSyncBytes) : PairingEvent;

/// <summary>Both bitmaps are exchanged (each side holds their union): this side starts the plan.</summary>
/// <param name="OutOfSyncBytes">What the union marks.</param>
internal sealed record Start(long OutOfSyncBytes) : PairingEvent;

/// <summary>A pairing in progress failed before it started (a request failed): what was attached stays.</summary>
internal sealed record Abandon : PairingEvent;

/// <summary>The peer connection ended.</summary>
internal sealed record Disconnected : PairingEvent;

/// <summary>The resync this node sent is complete (every mark cleared, the target told).</summary>
internal sealed record ResyncCompletedAsSource : PairingEvent;

/// <summary>The resync source says this replica holds everything (ResyncComplete).</summary>
internal sealed record ResyncCompletedAsTarget(GenerationIds Source) : PairingEvent;

/// <summary>The volume cannot be paired for a reason found before any plan (a name clash with another of the peer's volumes).</summary>
internal sealed record Unpairable(string Problem) : PairingEvent;

/// <summary>An I/O error (or <paramref name="Full"/>: no space) on this replica's pool or metadata.</summary>
internal sealed record LocalDiskFailed(string Reason, bool Full) : PairingEvent;

/// <summary>An admin attached the repaired disk again, or the node found room again in a full pool.</summary>
internal sealed record DiskAttached : PairingEvent;

/// <summary>The peer answered that its disk failed (an I/O error on a write or a flush): it may have lost writes this replica's bitmap does not name.</summary>
/// <param name="Local">This replica's facts now.</param>
internal sealed record PeerDiskFailed(ReplicaStatus Local) : PairingEvent;

/// <summary>An admin named this replica as the side of a split brain whose changes are discarded.</summary>
internal sealed record AdminDiscard : PairingEvent;

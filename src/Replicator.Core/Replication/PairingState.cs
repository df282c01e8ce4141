namespace Replicator.Core.Replication;

/// <summary>Where a volume's pairing with its peer stands (see <see cref="PairingMachine"/>).</summary>
internal enum PairingPhase
{
    /// <summary>No pairing: no connection, or the connection has not paired the volume yet.</summary>
    Alone,

    /// <summary>Both sides decided a plan (VolumeConnect) and exchange bitmaps; the volume's writes wait.</summary>
    Exchanging,

    /// <summary>A session is attached: the owner orders every write, the resync runs if one is due.</summary>
    Paired,

    /// <summary>The plan is refused (split brain, unrelated data, no usable source, a name clash): reported, waiting for an admin or the next connection.</summary>
    Refused,
}

/// <summary>Whether this replica's disk takes I/O, and if not, why.</summary>
internal enum DiskAttachment
{
    Attached,

    /// <summary>Detached after an I/O error; an admin attaches it again once it is repaired.</summary>
    Failed,

    /// <summary>Detached because its pool is full; attached again by the node once the pool has room.</summary>
    Full,
}

/// <summary>Which replica sends resync data now, as far as the pairing knows.</summary>
internal enum ResyncSource
{
    None,
    Local,
    Peer,
}

/// <summary>
/// One volume's pairing state, immutable: <see cref="PairingMachine.Next"/> returns the next one. The
/// replica's persistent facts (generation ids, disk state, flags) are not copied here: events carry
/// them as they are when the event happens, and actions say how they change.
/// </summary>
internal sealed record PairingState
{
    /// <summary>A volume as the node opens it: not paired, its disk as its metadata says.</summary>
    public static PairingState Initial(ReplicaStatus local) => new()
    {
        Disk = local.Disk != ReplicaDiskState.Diskless ? DiskAttachment.Attached
            : (local.Flags & ReplicaFlags.PoolFull) != 0 && !local.LostWrites ? DiskAttachment.Full
            : DiskAttachment.Failed,
    };

    public PairingPhase Phase { get; init; }

    /// <summary>The peer node of the pairing (<see cref="Guid.Empty"/> while alone).</summary>
    public Guid Peer { get; init; }

    /// <summary>The peer's replica status as its VolumeConnect said (kept for a split brain's resolution).</summary>
    public ReplicaStatus PeerStatus { get; init; }

    /// <summary>The plan of the last VolumeConnect (or refusal).</summary>
    public SyncDecision Decision { get; init; }

    /// <summary>Whether this node orders the volume's writes (while paired; in <see cref="PairingPhase.Exchanging"/>, the session still attached).</summary>
    public bool LocalIsOwner { get; init; }

    public SyncRole Role { get; init; }

    /// <summary>The resync compares checksums before sending runs that may match.</summary>
    public bool CompareFirst { get; init; }

    /// <summary>A session is attached: paired, or pairing again on the same connection.</summary>
    public bool SessionAttached { get; init; }

    /// <summary>Whether this node's own disk takes I/O.</summary>
    public DiskAttachment Disk { get; init; }

    /// <summary>Why the volume is not paired (for status output), while <see cref="PairingPhase.Refused"/>.</summary>
    public string? Problem { get; init; }

    /// <summary>This node is the volume's preferred node (from the last VolumeConnect).</summary>
    public bool LocalPreferred { get; init; }

    /// <summary>Whether the attached session uses this replica's disk (false: this node sends every request to its peer).</summary>
    public bool LocalHasDisk { get; init; } = true;

    /// <summary>Whether the attached session's peer has a disk (false: this node serves both and marks what the peer misses).</summary>
    public bool PeerHasDisk { get; init; } = true;

    /// <summary>
    /// Whether the plan of the last VolumeConnect makes this node the owner: the resync source, the side with a
    /// disk when the other has none, else the preferred node.
    /// </summary>
    public bool PlanMakesLocalOwner => Decision.Outcome switch
    {
        SyncOutcome.BecomeSource or SyncOutcome.PeerDiskless => true,
        SyncOutcome.BecomeTarget or SyncOutcome.LocalDiskless => false,
        _ => LocalPreferred,
    };

    /// <summary>
    /// Whether the volume is paired (or pairing) with <paramref name="peer"/>: the requests of a pairing
    /// (bitmaps, replicated and forwarded writes, resync data, reads of the peer's replica) are expected
    /// from that node only, and only then.
    /// </summary>
    public bool IsPairedWith(Guid peer) => Phase is PairingPhase.Exchanging or PairingPhase.Paired && Peer == peer && peer != Guid.Empty;

    /// <summary>Whether a bitmap push or pull of <paramref name="peer"/> belongs to a pairing in progress.</summary>
    public bool ExchangesBitmapsWith(Guid peer) => Phase == PairingPhase.Exchanging && Peer == peer && peer != Guid.Empty;

    /// <summary>
    /// The side whose resync engine may send resync data now: the owner while paired with a peer that
    /// has a disk (a resync target never sends; a role of none still lets the owner resend what a
    /// refused write marked).
    /// </summary>
    public ResyncSource ResyncSource =>
        Phase != PairingPhase.Paired || !PeerHasDisk || !LocalHasDisk ? ResyncSource.None
        : LocalIsOwner ? ResyncSource.Local
        : ResyncSource.Peer;
}

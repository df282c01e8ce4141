using System.Numerics;
using Replicator.Core.Volumes;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Node.Replication;

/// <summary>How far the pairing of one volume with the peer has come, on the connection a request arrived on.</summary>
internal enum PairingStage
{
    /// <summary>Not paired on this connection (never, not yet, or it stays unpaired).</summary>
    None,
    /// <summary>Between VolumeConnect and VolumeStart on this node: the two sides are comparing.</summary>
    Pairing,
    /// <summary>Paired on this connection: changes flow.</summary>
    Paired,
}

/// <summary>What a request is checked against: one volume's state with the peer, as the node knows it now.</summary>
/// <param name="Exists">Whether this node has the volume at all.</param>
/// <param name="Stage">How far its pairing on the request's connection has come.</param>
/// <param name="PeerOrders">Whether the peer orders the volume's changes (it is the owner, and the resync source), now or once the pairing in progress is done.</param>
/// <param name="SplitBrain">Whether the volume stays unpaired for a split brain an admin must resolve.</param>
internal readonly record struct VolumePairingState(bool Exists, PairingStage Stage, bool PeerOrders, bool SplitBrain)
{
    public static VolumePairingState NoVolume => default;
}

/// <summary>
/// The pairing as the request checks see it, for the connection a request arrived on. Answered by the
/// <see cref="ReplicationManager"/> today; the pairing state machine can answer it tomorrow.
/// </summary>
internal interface IPairingView
{
    /// <summary>This node's name.</summary>
    string LocalName { get; }

    /// <summary>The peer's name.</summary>
    string PeerName { get; }

    /// <summary>Whether this node dialed the connection (and so drives the pairing of every volume on it).</summary>
    bool LocalDialed { get; }

    VolumePairingState PairingOf(Guid volumeId);

    /// <summary>The id of this node's volume named <paramref name="name"/>, if it has one.</summary>
    Guid? VolumeNamed(string name);

    /// <summary>Why a volume of <paramref name="size"/> bytes may not exist here, or null (see <c>maxVolumeSize</c>).</summary>
    string? VolumeSizeProblem(long size);
}

/// <summary>A request refused at the edge: the reply status and why, in words for the peer's log and this node's.</summary>
internal readonly record struct PeerRefusal(ReplyStatus Status, string Reason);

/// <summary>
/// Checks each request of an authenticated peer against the state of the pairing before it reaches
/// its handler, as nbdkit's <c>validate_request</c> does before <c>handle_request</c>: a replicated or
/// resync write for a volume not paired with the peer on this connection, or whose changes this node
/// orders; a resync completion from a node that is not the resync source; pairing steps out of their
/// order or from the side that does not drive them; volumes created, grown, preferred or discarded in
/// ways that do not fit; sizes beyond <c>maxVolumeSize</c>; checksum requests whose answer would not fit
/// a frame. A refused request changes nothing; the connection stays up and the refusal is logged and counted.
/// </summary>
/// <remarks>Pure: it only reads the <see cref="IPairingView"/> it is given, so every rule is a table row in the unit tests.</remarks>
internal static class PeerRequestGuard
{
    /// <summary>The smallest checksum region: one 4 KiB block (what a resync compares).</summary>
    public const int MinRegionSize = 4096;

    /// <summary>The largest checksum region (what a verify may ask for).</summary>
    public const int MaxRegionSize = 16 << 20;

    /// <summary>Why <paramref name="request"/> does not fit the pairing; null when it may go to its handler.</summary>
    /// <param name="request">The request's header.</param>
    /// <param name="pairing">The pairing on the connection it came on.</param>
    /// <param name="maxReplyPayload">The largest payload a reply may carry.</param>
    public static PeerRefusal? Check(Envelope request, IPairingView pairing, int maxReplyPayload) => request.BodyCase switch
    {
        Envelope.BodyOneofCase.Write => CheckChange(request.Write.VolumeId, request.Write.Kind, "write", pairing),
        Envelope.BodyOneofCase.Trim => CheckChange(request.Trim.VolumeId, request.Trim.Kind, "trim", pairing),
        Envelope.BodyOneofCase.WriteZeroes => CheckChange(request.WriteZeroes.VolumeId, request.WriteZeroes.Kind, "write-zeroes", pairing),
        Envelope.BodyOneofCase.Flush => request.Flush.VolumeId.Length == 0 ? null : Existing(request.Flush.VolumeId, pairing, out _),
        Envelope.BodyOneofCase.Read => Existing(request.Read.VolumeId, pairing, out _),
        Envelope.BodyOneofCase.RegionChecksums => CheckChecksums(request.RegionChecksums, pairing, maxReplyPayload),
        Envelope.BodyOneofCase.ResyncComplete => Existing(request.ResyncComplete.VolumeId, pairing, out _),
        Envelope.BodyOneofCase.VolumeConnect => CheckPairingStep(request.VolumeConnect.VolumeId, "VolumeConnect", mustBePairing: false, pairing),
        Envelope.BodyOneofCase.BitmapPush => CheckPairingStep(request.BitmapPush.VolumeId, "BitmapPush", mustBePairing: true, pairing),
        Envelope.BodyOneofCase.BitmapPull => CheckPairingStep(request.BitmapPull.VolumeId, "BitmapPull", mustBePairing: true, pairing),
        Envelope.BodyOneofCase.VolumeStart => CheckPairingStep(request.VolumeStart.VolumeId, "VolumeStart", mustBePairing: true, pairing),
        Envelope.BodyOneofCase.VolumeCreate => CheckCreate(request.VolumeCreate, pairing),
        Envelope.BodyOneofCase.VolumeDelete => Guid.TryParse(request.VolumeDelete.VolumeId, out _) ? null : Invalid($"a delete names '{request.VolumeDelete.VolumeId}', which is not a volume id"),
        Envelope.BodyOneofCase.VolumeResize => CheckResize(request.VolumeResize, pairing),
        Envelope.BodyOneofCase.VolumePrefer => CheckPrefer(request.VolumePrefer, pairing),
        Envelope.BodyOneofCase.DiscardReplica => CheckDiscard(request.DiscardReplica, pairing),
        _ => null,
    };

    /// <summary>
    /// Why a ResyncComplete does not fit once the volume's pairing in progress is done (the source may
    /// finish before this side attached): only the node that orders the volume runs its resync.
    /// </summary>
    public static PeerRefusal? CheckResyncSource(string volumeId, IPairingView pairing)
    {
        if (Existing(volumeId, pairing, out var state) is { } missing)
        {
            return missing;
        }

        if (state.Stage != PairingStage.Paired)
        {
            return NotPermitted($"volume {volumeId} is not paired with {pairing.PeerName} on this connection; a resync from {pairing.PeerName} cannot have completed");
        }

        return state.PeerOrders
            ? null
            : NotPermitted($"{pairing.LocalName} orders volume {volumeId} and is its resync source; a ResyncComplete from {pairing.PeerName} does not fit and would mark this replica up to date under generation ids it did not earn");
    }

    /// <summary>
    /// Why this node does not take a volume the peer announces in its Hello (it would create or grow its
    /// replica to it); null when it does.
    /// </summary>
    public static string? CheckAnnouncement(VolumeDescriptor volume, Func<long, string?> sizeProblem)
    {
        if (!VolumeNames.IsValid(volume.Name))
        {
            return $"its volume '{volume.Name}' ({volume.VolumeId}) has a name this node cannot use";
        }

        if (SizeProblem(volume.Size, sizeProblem) is { } problem)
        {
            return $"its volume '{volume.Name}' ({volume.VolumeId}): {problem}";
        }

        return null;
    }

    private static PeerRefusal? CheckChange(string volumeId, WriteKind kind, string what, IPairingView pairing)
    {
        if (kind is not (WriteKind.Replicate or WriteKind.Resync or WriteKind.Forward))
        {
            return Invalid($"a {what} of an unknown kind ({(int)kind})");
        }

        if (Existing(volumeId, pairing, out var state) is { } missing)
        {
            return missing;
        }

        if (kind == WriteKind.Forward)
        {
            // The handler checks that this node orders the volume, once a pairing in progress is done.
            return null;
        }

        var label = kind == WriteKind.Resync ? $"resync {what}" : $"replicated {what}";
        if (state.Stage == PairingStage.None)
        {
            return NotPermitted($"volume {volumeId} is not paired with {pairing.PeerName} on this connection; a {label} would change this replica outside the pairing (no bitmap, no generation)");
        }

        return state.PeerOrders
            ? null
            : NotPermitted($"{pairing.LocalName} orders the changes of volume {volumeId}; a {label} from {pairing.PeerName} does not fit (forward it instead)");
    }

    private static PeerRefusal? CheckChecksums(RegionChecksumRequest request, IPairingView pairing, int maxReplyPayload)
    {
        if (Existing(request.VolumeId, pairing, out _) is { } missing)
        {
            return missing;
        }

        if (request.RegionSize is < MinRegionSize or > MaxRegionSize || !BitOperations.IsPow2(request.RegionSize))
        {
            return Invalid($"a checksum region of {request.RegionSize} bytes; regions are a power of two from {MinRegionSize} bytes to {MaxRegionSize >> 20} MiB");
        }

        var regions = (request.Length / request.RegionSize) + (request.Length % request.RegionSize == 0 ? 0UL : 1UL);
        return regions > (ulong)(maxReplyPayload / sizeof(ulong))
            ? Invalid($"checksums of {regions} regions would not fit one reply (at most {maxReplyPayload / sizeof(ulong)}); ask for a shorter range")
            : null;
    }

    private static PeerRefusal? CheckPairingStep(string volumeId, string step, bool mustBePairing, IPairingView pairing)
    {
        if (pairing.LocalDialed)
        {
            return Invalid($"{pairing.LocalName} dialed this connection and drives the pairing on it; a {step} from {pairing.PeerName} does not fit");
        }

        if (Existing(volumeId, pairing, out var state) is { } missing)
        {
            return missing;
        }

        return mustBePairing && state.Stage != PairingStage.Pairing
            ? Invalid($"volume {volumeId} is not being paired on this connection; a {step} does not fit")
            : null;
    }

    private static PeerRefusal? CheckCreate(VolumeCreateRequest request, IPairingView pairing)
    {
        if (request.Volume is not { } volume || !Guid.TryParse(volume.VolumeId, out var id))
        {
            return Invalid("a volume create without a volume id");
        }

        if (CheckAnnouncement(volume, pairing.VolumeSizeProblem) is { } problem)
        {
            return Invalid($"{pairing.PeerName} asks to create {problem}");
        }

        if (pairing.VolumeNamed(volume.Name) is { } existing && existing != id)
        {
            return Invalid($"{pairing.LocalName} has another volume named '{volume.Name}' (id {existing}); it does not create a second one (id {id})");
        }

        return request.PreferredNode.Length == 0 ? null : CheckNodeName(request.PreferredNode, pairing);
    }

    private static PeerRefusal? CheckResize(VolumeResizeRequest request, IPairingView pairing)
    {
        if (Existing(request.VolumeId, pairing, out _) is { } missing)
        {
            return missing;
        }

        return SizeProblem(request.Size, pairing.VolumeSizeProblem) is { } problem
            ? Invalid($"{pairing.PeerName} asks to grow volume {request.VolumeId}: {problem}")
            : null;
    }

    private static PeerRefusal? CheckPrefer(VolumePreferRequest request, IPairingView pairing) =>
        Existing(request.VolumeId, pairing, out _) ?? CheckNodeName(request.PreferredNode, pairing);

    private static PeerRefusal? CheckDiscard(DiscardReplicaRequest request, IPairingView pairing)
    {
        if (Existing(request.VolumeId, pairing, out var state) is { } missing)
        {
            return missing;
        }

        return state.SplitBrain
            ? null
            : Invalid($"volume {request.VolumeId} is not in split brain on {pairing.LocalName}; {pairing.PeerName} may not make it discard its replica");
    }

    private static PeerRefusal? CheckNodeName(string node, IPairingView pairing) =>
        node == pairing.LocalName || node == pairing.PeerName
            ? null
            : Invalid($"'{node}' is not a node of this pair ({pairing.LocalName} and {pairing.PeerName})");

    private static string? SizeProblem(ulong size, Func<long, string?> sizeProblem)
    {
        if (size > long.MaxValue)
        {
            return sizeProblem(long.MaxValue) ?? $"a volume of {size} bytes is larger than any volume can be";
        }

        if (size == 0 || size % VolumeNames.SizeAlignment != 0)
        {
            return $"a volume size of {size} bytes is not a positive multiple of {VolumeNames.SizeAlignment} bytes";
        }

        return sizeProblem((long)size);
    }

    private static PeerRefusal? Existing(string volumeId, IPairingView pairing, out VolumePairingState state)
    {
        state = Guid.TryParse(volumeId, out var id) ? pairing.PairingOf(id) : VolumePairingState.NoVolume;
        return state.Exists ? null : new PeerRefusal(ReplyStatus.UnknownVolume, $"node {pairing.LocalName} has no volume {volumeId}");
    }

    private static PeerRefusal Invalid(string reason) => new(ReplyStatus.Invalid, reason);

    private static PeerRefusal NotPermitted(string reason) => new(ReplyStatus.NotPermitted, reason);
}

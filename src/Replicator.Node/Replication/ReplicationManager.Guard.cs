using Replicator.Core.Replication;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Node.Replication;

/// <summary>
/// The pairing as <see cref="PeerRequestGuard"/> sees it (<see cref="PairingOf"/>), and what the node
/// does with a refusal: reply, log, count.
/// </summary>
internal sealed partial class ReplicationManager
{
    /// <summary>What the node refused on its peer link, and how the link is protected.</summary>
    public PeerSecurityStatus Security { get; } = new();

    /// <summary>
    /// The pairing of volume <paramref name="volumeId"/> with the peer on <paramref name="connection"/>: a
    /// volume being paired counts with the owner it is about to get (the changes of the new owner may
    /// arrive before this side attached), a paired one with the owner of its session.
    /// </summary>
    public VolumePairingState PairingOf(Guid volumeId, PeerConnection connection)
    {
        lock (_lock)
        {
            if (!_volumes.TryGetValue(volumeId, out var volume))
            {
                return VolumePairingState.NoVolume;
            }

            var state = volume.PairingState;
            var splitBrain = state.Phase == PairingPhase.Refused && state.Decision.Outcome == SyncOutcome.SplitBrain;
            if (_context is not { } context || context.Connection != connection)
            {
                return new VolumePairingState(true, PairingStage.None, PeerOrders: false, splitBrain);
            }

            if (state.Phase == PairingPhase.Exchanging && state.Peer == context.PeerId)
            {
                return new VolumePairingState(true, PairingStage.Pairing, !state.PlanMakesLocalOwner, splitBrain);
            }

            return volume.Session is { Peer: PeerVolumeChannel channel } session && channel.Connection == connection
                ? new VolumePairingState(true, PairingStage.Paired, !session.LocalIsOwner, splitBrain)
                : new VolumePairingState(true, PairingStage.None, PeerOrders: false, splitBrain);
        }
    }

    /// <summary>Checks a request against the pairing; false (after replying, logging and counting) when it is refused.</summary>
    private async ValueTask<bool> AdmitAsync(PeerIncomingRequest request, PeerRefusal? refusal)
    {
        if (refusal is not { } refused)
        {
            return true;
        }

        var reason = $"{request.Header.BodyCase} request {request.RequestId} from {request.Connection.PeerName}: {refused.Reason}";
        Security.RequestRefused(reason);
        _logger.LogWarning("Refused {Body} request {RequestId} from peer {Peer} with {Status}: {Reason}",
            request.Header.BodyCase, request.RequestId, request.Connection.PeerName, refused.Status, refused.Reason);
        await TryReplyAsync(request, refused.Status, refused.Reason);
        return false;
    }

    private PairingView ViewOf(PeerConnection connection)
    {
        bool dialed;
        lock (_lock)
        {
            dialed = _context is { } context && context.Connection == connection && context.Dialed;
        }

        return new PairingView(this, connection, dialed);
    }

    /// <summary>Why this node does not take a volume the peer's Hello announces, or null (see <see cref="PeerRequestGuard.CheckAnnouncement"/>).</summary>
    public string? AnnouncementProblem(Hello peer)
    {
        foreach (var volume in peer.Volumes)
        {
            if (PeerRequestGuard.CheckAnnouncement(volume, _config.VolumeSizeProblem) is { } problem)
            {
                return $"node '{peer.NodeName}' announces {problem}; the nodes pair once both allow every volume of the pair (maxVolumeSize in node.json)";
            }
        }

        return null;
    }

    private sealed class PairingView(ReplicationManager manager, PeerConnection connection, bool dialed) : IPairingView
    {
        public string LocalName => manager.LocalName;

        public string PeerName => manager.PeerName ?? connection.PeerName;

        public bool LocalDialed => dialed;

        public VolumePairingState PairingOf(Guid volumeId) => manager.PairingOf(volumeId, connection);

        public Guid? VolumeNamed(string name) => manager.Find(name)?.Id;

        public string? VolumeSizeProblem(long size) => manager._config.VolumeSizeProblem(size);
    }
}

using Replicator.Core.Replication;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Node.Replication;

/// <summary>
/// Pairing a volume again on the same connection when a disk was detached or attached again: only the
/// node that dialed drives pairings (two at once would each hold its own side's writes and wait for the
/// other's), so the other asks it with VolumeRepair.
/// </summary>
internal sealed partial class ReplicationManager
{
    /// <summary>The peer's side of a pairing it asked for (its disk was detached or attached again): the dialer pairs the volume again.</summary>
    private void HandleVolumeRepair(VolumeRepairRequest message, CancellationToken ct)
    {
        var volume = RequireVolume(message.VolumeId);
        _logger.LogWarning("Volume {Volume}: peer {Peer} asks to pair it again ({Reason})", volume.Name, PeerName, message.Reason);
        PairInBackground(volume, ct);
    }

    /// <summary>
    /// The volume's disk was detached or attached again (see <see cref="ReplicatedVolume.RepairRequested"/>): the node
    /// that dialed pairs it again; the other asks it to.
    /// </summary>
    private void OnRepairRequested(ReplicatedVolume volume, string reason)
    {
        ConnectionContext? context;
        lock (_lock)
        {
            context = _context;
        }

        if (context is null)
        {
            return;
        }

        if (context.Dialed)
        {
            PairInBackground(volume, CancellationToken.None);
            return;
        }

        _ = Task.Run(async () =>
        {
            try
            {
                using var reply = await context.Connection.SendRequestAsync(new Envelope
                {
                    VolumeRepair = new VolumeRepairRequest { VolumeId = volume.Id.ToString(), Reason = reason },
                }, default, CancellationToken.None);
                reply.ThrowIfFailed();
            }
            catch (Exception e) when (e is PeerConnectionClosedException or PeerRequestFailedException or InvalidOperationException)
            {
                _logger.LogWarning("Volume {Volume}: asking {Peer} to pair it again failed ({Reason}); it pairs on the next connection", volume.Name, PeerName, e.Message);
            }
        });
    }
}

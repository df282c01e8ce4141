using Replicator.Core.Replication;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Node.Replication;

/// <summary>Admin operations on replicated volumes: online verify and split-brain resolution.</summary>
internal sealed partial class ReplicationManager
{
    private readonly Dictionary<Guid, VolumeVerifier> _verifies = [];

    /// <summary>Starts an online verify of the volume (or returns the one already running).</summary>
    public VolumeVerifier StartVerify(ReplicatedVolume volume, int regionSize)
    {
        lock (_lock)
        {
            if (_verifies.TryGetValue(volume.Id, out var running) && running.Report.State == VerifyState.Running)
            {
                return running;
            }

            var verifier = new VolumeVerifier(volume, regionSize);
            _verifies[volume.Id] = verifier;
            _ = Task.Run(async () =>
            {
                var report = await verifier.RunAsync(CancellationToken.None);
                _logger.LogInformation("Volume {Volume}: verify {State}, {Differing} differing regions of {RegionSize} bytes{Error}",
                    volume.Name, report.State, report.DifferingRegions, report.RegionSize, report.Error is null ? "" : ": " + report.Error);
            });
            return verifier;
        }
    }

    public VolumeVerifier? LatestVerify(ReplicatedVolume volume)
    {
        lock (_lock)
        {
            return _verifies.GetValueOrDefault(volume.Id);
        }
    }

    /// <summary>
    /// Resolves a split brain by discarding the changes of <paramref name="discardNode"/>'s replica:
    /// that replica takes the data set both shared, and the pair reconnects and resyncs it.
    /// </summary>
    public async Task ResolveSplitBrainAsync(ReplicatedVolume volume, string discardNode, CancellationToken ct)
    {
        if (discardNode != LocalName && discardNode != PeerName)
        {
            throw new ArgumentException($"'{discardNode}' is not a node of this pair (it has {LocalName} and {PeerName})");
        }

        if (discardNode == LocalName)
        {
            DiscardLocal(volume);
        }
        else
        {
            var connection = CurrentConnection() ?? throw new InvalidOperationException($"peer {PeerName} is not connected; resolve on {PeerName} itself, or reconnect it first");
            try
            {
                using var reply = await connection.SendRequestAsync(new Envelope { DiscardReplica = new DiscardReplicaRequest { VolumeId = volume.Id.ToString() } }, default, ct);
                if (!reply.IsOk)
                {
                    throw new InvalidOperationException($"peer {PeerName} could not discard its replica: {reply.Message}");
                }
            }
            catch (PeerConnectionClosedException e)
            {
                throw new InvalidOperationException($"the connection to {PeerName} ended before it confirmed ({e.Message}); check 'replicator status' and resolve again if the split brain is still reported");
            }
        }

        await ReconnectAsync($"split brain of volume {volume.Name} resolved");
    }

    private void HandleDiscardReplica(DiscardReplicaRequest message)
    {
        // The peer that asked reconnects once it has this reply; both then pair the volume again.
        DiscardLocal(RequireVolume(message.VolumeId));
    }

    private static void DiscardLocal(ReplicatedVolume volume) => volume.DiscardThisSide();

    /// <summary>Ends the current connection so that both sides pair every volume again.</summary>
    private async Task ReconnectAsync(string reason)
    {
        if (CurrentConnection() is { } connection)
        {
            await connection.CloseAsync(reason);
        }
    }
}

using Replicator.Core.Devices;
using Replicator.Core.Replication;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Node.Replication;

/// <summary>
/// Pairing the volumes with the peer after each handshake: volumes one side lacks are created
/// (or, if this side deleted them, deleted on the peer), then each shared volume goes through
/// VolumeConnect → bitmap exchange → VolumeStart (see proto/peer.proto), driven by the node that dialed.
/// </summary>
internal sealed partial class ReplicationManager
{
    private const int BitmapChunkBytes = 4 << 20;

    /// <summary>The holds of pairings the peer (which dialed) is driving, between its VolumeConnect and VolumeStart.</summary>
    private readonly Dictionary<Guid, ReplicatedVolume.PairingHold> _pending = [];
    private ConnectionContext? _context;
    private int _connects;
    private int _disconnects;

    /// <summary>Connections made to the peer since this node started (more than a few a minute: a flapping link).</summary>
    public int Connects => Volatile.Read(ref _connects);

    /// <summary>Connections to the peer lost since this node started.</summary>
    public int Disconnects => Volatile.Read(ref _disconnects);

    /// <summary>The last measured round trip to the peer, while connected.</summary>
    public TimeSpan? PeerRoundTrip
    {
        get
        {
            lock (_lock)
            {
                return _context?.Connection.LastRoundTrip;
            }
        }
    }

    /// <summary>Why a volume is not paired (split brain, unrelated data), for status output.</summary>
    public static string? PairingProblem(ReplicatedVolume volume) =>
        volume.PairingState is { Phase: PairingPhase.Refused } state ? state.Problem : null;

    /// <summary>
    /// Called once the handshake is done and before the connection starts serving requests, so that
    /// a request the peer sends at once finds the connection (and waits for <see cref="AttachAsync"/>).
    /// </summary>
    public void BeginAttach(PeerConnection connection, Hello peerHello, bool dialed)
    {
        var context = new ConnectionContext(connection, Guid.Parse(peerHello.NodeId), peerHello, dialed);
        lock (_lock)
        {
            _context = context;
        }

        foreach (var volume in Volumes)
        {
            volume.OnLinkUp();
        }
    }

    /// <summary>
    /// Reconciles the volume lists, announces the volumes created here while the handshake ran,
    /// then (the dialer) pairs every volume both nodes now hold: those the peer announced, those
    /// this node announced (the peer created its replica while reconciling), and the new ones.
    /// </summary>
    public async Task AttachAsync(PeerConnection connection, Hello localHello, Hello peerHello, bool dialed, CancellationToken ct)
    {
        var peerId = Guid.Parse(peerHello.NodeId);
        ConnectionContext context;
        lock (_lock)
        {
            if (_context?.Connection != connection)
            {
                return;
            }

            context = _context;
        }

        Volatile.Write(ref _link, new PeerLinkState(peerHello.NodeName, peerId, DateTimeOffset.UtcNow, connection.PeerName, connection.ReadLease, connection.ReadLeaseAsked));
        Interlocked.Increment(ref _connects);
        try
        {
            await ReconcileVolumesAsync(context, ct);
        }
        finally
        {
            context.Ready.TrySetResult();
        }

        var peerHas = peerHello.Volumes.Select(d => Guid.Parse(d.VolumeId)).ToHashSet();
        var announced = localHello.Volumes.Select(d => Guid.Parse(d.VolumeId)).ToHashSet();
        var createdMeanwhile = Volumes.Where(v => !peerHas.Contains(v.Id) && !announced.Contains(v.Id)).ToList();
        foreach (var volume in createdMeanwhile)
        {
            await AnnounceCreatedAsync(connection, volume, ct);
        }

        if (!dialed)
        {
            return;
        }

        foreach (var id in peerHas)
        {
            if (TryFind(id, out var volume))
            {
                await PairAsDialerAsync(context, volume, ct);
            }
        }

        foreach (var volume in Volumes.Where(v => !peerHas.Contains(v.Id) && (announced.Contains(v.Id) || (createdMeanwhile.Contains(v) && v.Session is null))))
        {
            try
            {
                await PairAsDialerAsync(context, volume, ct);
            }
            catch (PeerRequestFailedException e) when (e.Status == ReplyStatus.UnknownVolume)
            {
                // The peer did not take the volume: it was deleted there, or a volume of the same name has another id.
                _logger.LogWarning("Volume {Volume} stays unpaired: peer {Peer} has no replica of it ({Reason})", volume.Name, connection.PeerName, e.Message);
            }
        }
    }

    /// <summary>The connection ended: every volume continues alone.</summary>
    public async Task DetachAsync(PeerConnection connection, PeerConnectionEnd end)
    {
        List<ReplicatedVolume.PairingHold> abandoned;
        lock (_lock)
        {
            if (_context?.Connection != connection)
            {
                return;
            }

            _context.Ready.TrySetResult();
            _context = null;
            abandoned = [.. _pending.Values];
            _pending.Clear();
        }

        Volatile.Write(ref _link, null);
        Interlocked.Increment(ref _disconnects);
        abandoned.ForEach(p => p.Dispose());
        foreach (var volume in Volumes)
        {
            await volume.DisconnectAsync();
        }

        _logger.LogWarning("Peer {Peer} disconnected ({Reason}); volumes continue alone", connection.PeerName, end);
    }

    private async Task ReconcileVolumesAsync(ConnectionContext context, CancellationToken ct)
    {
        foreach (var descriptor in context.PeerHello.Volumes)
        {
            var id = Guid.Parse(descriptor.VolumeId);
            if (TryFind(id, out var existing))
            {
                if ((long)descriptor.Size > existing.Size)
                {
                    _pool.ResizeVolume(existing.Local, (long)descriptor.Size);
                    _logger.LogInformation("Volume {Volume} grew to {Size} bytes to match peer {Peer}", existing.Name, descriptor.Size, context.Connection.PeerName);
                }

                continue;
            }

            if (_tombstones.Contains(id))
            {
                _logger.LogWarning("Peer {Peer} still has volume {Volume} ({Id}), deleted here while it was away; asking it to delete its replica",
                    context.Connection.PeerName, descriptor.Name, id);
                using var reply = await context.Connection.SendRequestAsync(new Envelope { VolumeDelete = new VolumeDeleteRequest { VolumeId = descriptor.VolumeId } }, default, ct);
                continue;
            }

            if (Find(descriptor.Name) is { } clash)
            {
                _logger.LogError("Volume {Volume} exists on both nodes with different ids ({Local} here, {Remote} on {Peer}); it stays unpaired until one is renamed or deleted",
                    descriptor.Name, clash.Id, id, context.Connection.PeerName);
                clash.MarkUnpairable($"the peer has another volume named '{descriptor.Name}' (id {id})");

                continue;
            }

            var local = _pool.CreateVolume(descriptor.Name, (long)descriptor.Size, id);
            Register(local, ReplicaOrigin.CopiedFromPeer);
            _logger.LogInformation("Created replica of volume {Volume} ({Size} bytes) from peer {Peer}; it receives a full sync",
                descriptor.Name, descriptor.Size, context.Connection.PeerName);
        }
    }

    private async Task PairAsDialerAsync(ConnectionContext context, ReplicatedVolume volume, CancellationToken ct)
    {
        var connection = context.Connection;
        var id = volume.Id.ToString();
        var preferred = PreferredNode(volume);
        var pairing = await volume.BeginPairingAsync(ct);
        var started = false;
        try
        {
            var status = volume.Replica.Status;
            using var reply = await connection.SendRequestAsync(new Envelope
            {
                VolumeConnect = new VolumeConnectRequest
                {
                    VolumeId = id,
                    Generation = PeerMessages.ToProto(status.Ids),
                    DiskState = PeerMessages.ToProto(status.Disk),
                    Flags = (uint)status.Flags,
                    PreferredNode = preferred,
                },
            }, default, ct);
            reply.ThrowIfFailed();
            var peer = reply.Body.VolumeConnect;
            var peerStatus = new ReplicaStatus(PeerMessages.FromProto(peer.Generation), PeerMessages.FromProto(peer.DiskState), (ReplicaFlags)peer.Flags);
            if (!await ConnectAsync(volume, pairing, status, peerStatus, preferred, context))
            {
                return;
            }

            foreach (var chunk in volume.Replica.EncodeBitmap(BitmapChunkBytes))
            {
                using var pushed = await connection.SendRequestAsync(new Envelope { BitmapPush = new BitmapPushRequest { VolumeId = id } }, chunk, ct);
                pushed.ThrowIfFailed();
            }

            for (var page = 0L; page >= 0;)
            {
                using var pulled = await connection.SendRequestAsync(new Envelope { BitmapPull = new BitmapPullRequest { VolumeId = id, FromPage = page } }, default, ct);
                pulled.ThrowIfFailed();
                volume.Replica.MergePeerBitmap(pulled.Payload.Span);
                page = pulled.Body.BitmapPull.NextPage;
            }

            started = true;
            await StartAsync(volume, pairing, context);
            using var start = await connection.SendRequestAsync(new Envelope { VolumeStart = new VolumeStartRequest { VolumeId = id } }, default, ct);
            start.ThrowIfFailed();
        }
        finally
        {
            if (!started)
            {
                volume.AbandonPairing(pairing);
            }
        }
    }

    private async ValueTask HandleVolumeConnectAsync(PeerIncomingRequest request, VolumeConnectRequest message, CancellationToken ct)
    {
        var context = await ReadyContextAsync(ct);
        var volume = RequireVolume(message.VolumeId);
        var pairing = await volume.BeginPairingAsync(ct);
        ReplicaStatus status;
        try
        {
            status = volume.Replica.Status;
            var peerStatus = new ReplicaStatus(PeerMessages.FromProto(message.Generation), PeerMessages.FromProto(message.DiskState), (ReplicaFlags)message.Flags);
            if (await ConnectAsync(volume, pairing, status, peerStatus, message.PreferredNode, context))
            {
                lock (_lock)
                {
                    _pending[volume.Id] = pairing;
                }
            }
        }
        catch
        {
            volume.AbandonPairing(pairing);
            throw;
        }

        var reply = new Reply
        {
            VolumeConnect = new VolumeConnectReply
            {
                Generation = PeerMessages.ToProto(status.Ids),
                DiskState = PeerMessages.ToProto(status.Disk),
                Flags = (uint)status.Flags,
            },
        };
        await request.ReplyAsync(reply);
    }

    private void HandleBitmapPush(PeerIncomingRequest request, BitmapPushRequest message)
    {
        var volume = RequireVolume(message.VolumeId);
        RequirePending(volume);
        volume.Replica.MergePeerBitmap(request.Payload.Span);
    }

    private async ValueTask HandleBitmapPullAsync(PeerIncomingRequest request, BitmapPullRequest message)
    {
        var volume = RequireVolume(message.VolumeId);
        RequirePending(volume);
        var (chunk, next) = volume.Replica.EncodeBitmapChunk(message.FromPage, BitmapChunkBytes);
        await request.ReplyAsync(new Reply { BitmapPull = new BitmapPullReply { NextPage = next } }, chunk);
    }

    private async ValueTask HandleVolumeStartAsync(VolumeStartRequest message)
    {
        var volume = RequireVolume(message.VolumeId);
        ReplicatedVolume.PairingHold? pending;
        ConnectionContext? context;
        lock (_lock)
        {
            _pending.Remove(volume.Id, out pending);
            context = _context;
        }

        if (pending is null || context is null)
        {
            throw new BlockDeviceException(StorageError.InvalidArgument, $"volume '{volume.Name}' is not being paired");
        }

        await StartAsync(volume, pending, context);
    }

    /// <summary>VolumeConnect on this side: the plan, logged. False when it is refused (the volume stays unpaired).</summary>
    private async Task<bool> ConnectAsync(ReplicatedVolume volume, ReplicatedVolume.PairingHold pairing, ReplicaStatus local, ReplicaStatus peer, string preferred, ConnectionContext context)
    {
        var facts = new PeerFacts(context.PeerId, context.Connection.PeerName, peer, LocalWinsTies: _config.NodeId.CompareTo(context.PeerId) < 0, LocalPreferred: preferred == LocalName);
        var plan = await volume.ConnectAsync(pairing, local, facts);
        var decision = plan.Decision;
        _logger.LogInformation("Volume {Volume} pairing with {Peer}: {Outcome} ({Kind}) by rule {Rule}: {Reason}; here {LocalIds} {LocalDisk}, there {PeerIds} {PeerDisk}",
            volume.Name, context.Connection.PeerName, decision.Outcome, decision.Kind, decision.Rule, decision.Reason, local.Ids, local.Disk, peer.Ids, peer.Disk);
        return !plan.Refused;
    }

    private static Task StartAsync(ReplicatedVolume volume, ReplicatedVolume.PairingHold pairing, ConnectionContext context) =>
        volume.StartAsync(pairing, new PeerVolumeChannel(context.Connection, volume.Id), context.Connection.PeerName, context.Connection.ReadLease);

    private async ValueTask<ConnectionContext> ReadyContextAsync(CancellationToken ct)
    {
        ConnectionContext? context;
        lock (_lock)
        {
            context = _context;
        }

        if (context is null)
        {
            throw new BlockDeviceException(StorageError.Shutdown, "not connected");
        }

        await context.Ready.Task.WaitAsync(ct);
        return context;
    }

    private void RequirePending(ReplicatedVolume volume)
    {
        lock (_lock)
        {
            if (!_pending.ContainsKey(volume.Id) || _context is not { } context || !volume.PairingState.ExchangesBitmapsWith(context.PeerId))
            {
                throw new BlockDeviceException(StorageError.InvalidArgument, $"volume '{volume.Name}' is not being paired");
            }
        }
    }

    private sealed record ConnectionContext(PeerConnection Connection, Guid PeerId, Hello PeerHello, bool Dialed)
    {
        public TaskCompletionSource Ready { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

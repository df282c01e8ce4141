using Replicator.Core.Devices;
using Replicator.Core.Replication;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Node.Replication;

/// <summary>
/// Creating, growing and deleting volumes on the pair. A volume is created on this node first
/// and then on the peer with the same id, both as the fresh all-zero data set; if the peer is
/// away it gets the volume (and a sync) when it reconnects. Deletes go to the peer first and
/// leave a tombstone here, so a volume deleted while the peer was away is deleted there later
/// instead of coming back.
/// </summary>
internal sealed partial class ReplicationManager
{
    public async Task<ReplicatedVolume> CreateVolumeAsync(string name, long size, string? preferredNode, CancellationToken ct)
    {
        if (preferredNode is not null && preferredNode != LocalName && preferredNode != PeerName)
        {
            throw new ArgumentException($"'{preferredNode}' is not a node of this pair (it has {LocalName}{(PeerName is null ? "" : " and " + PeerName)})");
        }

        _config.RequireVolumeSize(size);
        var local = _pool.CreateVolume(name, size);
        var volume = Register(local, ReplicaOrigin.CreatedHere);
        var settings = new VolumeSettings(preferredNode);
        settings.Save(_files, ReplicaDirectory(volume.Id));
        lock (_lock)
        {
            _settings[volume.Id] = settings;
        }

        if (CurrentConnection() is { } connection && await AnnounceCreatedAsync(connection, volume, ct))
        {
            await PairCreatedVolumeAsync(volume, ct);
        }
        else
        {
            await _quorum.RecordCreatedAloneAsync(volume, ct);
        }

        return volume;
    }

    /// <summary>
    /// Asks the peer to create its replica of a volume created here, as the fresh data set (any
    /// change made here since is in this replica's bitmap, and the pairing sends it). False when
    /// the peer did not: it gets the volume, and a full sync, when it next connects.
    /// </summary>
    private async Task<bool> AnnounceCreatedAsync(PeerConnection connection, ReplicatedVolume volume, CancellationToken ct)
    {
        try
        {
            using var reply = await connection.SendRequestAsync(new Envelope
            {
                VolumeCreate = new VolumeCreateRequest
                {
                    Volume = new VolumeDescriptor { VolumeId = volume.Id.ToString(), Name = volume.Name, Size = (ulong)volume.Size, AllocationUnit = (uint)volume.Local.UnitSize },
                    PreferredNode = PreferredNode(volume),
                },
            }, default, ct);
            reply.ThrowIfFailed();
            return true;
        }
        catch (Exception e) when (e is PeerConnectionClosedException or PeerRequestFailedException)
        {
            _logger.LogWarning("Volume {Volume} was created here, but not yet on peer {Peer} ({Reason}); it will be when the peer reconnects",
                volume.Name, PeerName, e.Message);
            return false;
        }
    }

    public async Task ResizeVolumeAsync(ReplicatedVolume volume, long size, CancellationToken ct)
    {
        _config.RequireVolumeSize(size);
        volume.Grow(_pool, size);
        if (CurrentConnection() is { } connection)
        {
            using var reply = await connection.SendRequestAsync(new Envelope
            {
                VolumeResize = new VolumeResizeRequest { VolumeId = volume.Id.ToString(), Size = (ulong)size },
            }, default, ct);
            reply.ThrowIfFailed();
        }
    }

    /// <summary>
    /// Deletes the volume on both nodes. Refused while a client is attached on either node, and
    /// while the peer is away unless <paramref name="force"/> (then the peer deletes its replica
    /// when it reconnects).
    /// </summary>
    public async Task DeleteVolumeAsync(ReplicatedVolume volume, bool force, Func<ReplicatedVolume, int> attachedClients, CancellationToken ct)
    {
        var attached = attachedClients(volume);
        if (attached > 0)
        {
            throw new VolumeInUseException($"volume '{volume.Name}' has {attached} attached NBD connection(s) on this node; disconnect them before deleting it");
        }

        if (CurrentConnection() is { } connection)
        {
            using var reply = await connection.SendRequestAsync(new Envelope { VolumeDelete = new VolumeDeleteRequest { VolumeId = volume.Id.ToString() } }, default, ct);
            if (!reply.IsOk)
            {
                throw new VolumeInUseException($"peer {PeerName} refused to delete its replica: {reply.Message}");
            }
        }
        else if (PeerName is not null && !force)
        {
            throw new InvalidOperationException(
                $"peer {PeerName} is not connected; deleting '{volume.Name}' now would leave its replica there. Reconnect it, or force the delete (the peer then deletes its replica when it reconnects)");
        }

        DeleteLocal(volume);
    }

    /// <summary>
    /// Changes the node a volume prefers (the one the gateway sends its I/O to, and that orders its
    /// writes while both replicas are up to date), on both nodes, and pairs the volume again so the
    /// new owner orders writes from now on. Writes wait for the moment of the change; none fails.
    /// </summary>
    public async Task SetPreferredNodeAsync(ReplicatedVolume volume, string node, CancellationToken ct)
    {
        if (node != LocalName && node != PeerName)
        {
            throw new ArgumentException($"'{node}' is not a node of this pair (it has {LocalName}{(PeerName is null ? "" : " and " + PeerName)})");
        }

        SaveSettings(volume.Id, new VolumeSettings(node));
        ConnectionContext? context;
        lock (_lock)
        {
            context = _context;
        }

        if (context is null)
        {
            return;
        }

        using var reply = await context.Connection.SendRequestAsync(new Envelope
        {
            VolumePrefer = new VolumePreferRequest { VolumeId = volume.Id.ToString(), PreferredNode = node },
        }, default, ct);
        reply.ThrowIfFailed();
        if (context.Dialed && volume.Session is not null)
        {
            await PairAsDialerAsync(context, volume, ct);
        }
    }

    /// <summary>Records the peer's change of preferred node; returns the volume when this node (the dialer) must pair it again.</summary>
    private ReplicatedVolume? HandleVolumePrefer(VolumePreferRequest message)
    {
        var volume = RequireVolume(message.VolumeId);
        SaveSettings(volume.Id, new VolumeSettings(message.PreferredNode));
        lock (_lock)
        {
            return _context is { Dialed: true } && volume.Session is not null ? volume : null;
        }
    }

    private void SaveSettings(Guid volumeId, VolumeSettings settings)
    {
        settings.Save(_files, ReplicaDirectory(volumeId));
        lock (_lock)
        {
            _settings[volumeId] = settings;
        }
    }

    /// <summary>Whether any client is attached to a volume here; set by the node's export catalog.</summary>
    public Func<ReplicatedVolume, int> AttachedClients { get; set; } = _ => 0;

    /// <summary>Creates the volume the peer created; returns it when this node must now pair it (it dialed).</summary>
    private ReplicatedVolume? HandlePeerCreate(VolumeCreateRequest message)
    {
        var descriptor = message.Volume;
        var id = Guid.Parse(descriptor.VolumeId);
        if (TryFind(id, out _))
        {
            return null;
        }

        if (_tombstones.Contains(id))
        {
            throw new UnknownVolumeException($"volume '{descriptor.Name}' ({id}) was deleted on {LocalName}; it is not created again");
        }

        var local = _pool.CreateVolume(descriptor.Name, (long)descriptor.Size, id);
        var volume = Register(local, ReplicaOrigin.CreatedHere);
        var settings = new VolumeSettings(message.PreferredNode.Length > 0 ? message.PreferredNode : null);
        settings.Save(_files, ReplicaDirectory(id));
        lock (_lock)
        {
            _settings[id] = settings;
        }

        _logger.LogInformation("Created volume {Volume} ({Size} bytes) as asked by peer {Peer}", volume.Name, descriptor.Size, PeerName);
        return volume;
    }

    private void HandlePeerDelete(VolumeDeleteRequest message)
    {
        if (!Guid.TryParse(message.VolumeId, out var id) || !TryFind(id, out var volume))
        {
            return;
        }

        var attached = AttachedClients(volume);
        if (attached > 0)
        {
            throw new BlockDeviceException(StorageError.NotPermitted, $"volume '{volume.Name}' has {attached} attached NBD connection(s) on {LocalName}");
        }

        DeleteLocal(volume);
        _logger.LogInformation("Deleted volume {Volume} as asked by peer {Peer}", volume.Name, PeerName);
    }

    private void HandlePeerResize(VolumeResizeRequest message)
    {
        var volume = RequireVolume(message.VolumeId);
        if ((long)message.Size > volume.Size)
        {
            _pool.ResizeVolume(volume.Local, (long)message.Size);
            volume.Replica.Grow((long)message.Size);
        }
    }

    private void DeleteLocal(ReplicatedVolume volume)
    {
        _tombstones.Add(volume.Id);
        lock (_lock)
        {
            _volumes.Remove(volume.Id);
            _settings.Remove(volume.Id);
        }

        if (volume.Session is { } session)
        {
            volume.DetachAsync(session).GetAwaiter().GetResult();
        }

        volume.Dispose();
        _pool.DeleteVolume(volume.Local);
        Directory.Delete(ReplicaDirectory(volume.Id), recursive: true);
    }

    /// <summary>
    /// Pairs a volume just created on both nodes (both hold the fresh data set, nothing to send):
    /// the dialing node drives it; the other waits a little for it, so the volume is paired when
    /// the create returns.
    /// </summary>
    private async Task PairCreatedVolumeAsync(ReplicatedVolume volume, CancellationToken ct)
    {
        ConnectionContext? context;
        lock (_lock)
        {
            context = _context;
        }

        if (context is { Dialed: true })
        {
            await PairAsDialerAsync(context, volume, ct);
            return;
        }

        for (var waited = 0; waited < 100 && volume.Session is null && CurrentConnection() is not null; waited++)
        {
            await Task.Delay(50, ct);
        }
    }

    /// <summary>After creating a volume the peer asked for, the dialing node pairs it.</summary>
    private void PairInBackground(ReplicatedVolume volume, CancellationToken ct)
    {
        ConnectionContext? context;
        lock (_lock)
        {
            context = _context;
        }

        if (context is { Dialed: true })
        {
            _ = Task.Run(async () =>
            {
                try
                {
                    await PairAsDialerAsync(context, volume, ct);
                }
                catch (Exception e) when (e is PeerConnectionClosedException or PeerRequestFailedException or OperationCanceledException or BlockDeviceException)
                {
                    _logger.LogWarning("Pairing new volume {Volume} with {Peer} failed: {Reason}; it pairs on the next connection", volume.Name, PeerName, e.Message);
                }
            }, CancellationToken.None);
        }
    }

    private PeerConnection? CurrentConnection()
    {
        lock (_lock)
        {
            return _context?.Connection;
        }
    }
}

/// <summary>A volume cannot be deleted because a client uses it.</summary>
internal sealed class VolumeInUseException(string message) : InvalidOperationException(message);

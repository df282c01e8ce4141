using Microsoft.Extensions.Logging;
using Replicator.Core.Devices;

namespace Replicator.Core.Replication;

/// <summary>What this side knows of the peer's replica when a pairing starts (its VolumeConnect).</summary>
/// <param name="LocalWinsTies">Opposite on the two nodes (for example: this node's id sorts first).</param>
/// <param name="LocalPreferred">This node is the volume's preferred node.</param>
internal sealed record PeerFacts(Guid Id, string Name, ReplicaStatus Status, bool LocalWinsTies, bool LocalPreferred);

/// <summary>The plan a VolumeConnect produced on this side; <see cref="Problem"/> says why it is refused.</summary>
internal readonly record struct PairingPlan(SyncDecision Decision, ReplicaStatus Local, string? Problem)
{
    public bool Refused => Problem is not null;
}

/// <summary>A pairing event the state machine refused: a peer request out of turn, an admin command that does not apply.</summary>
internal sealed class PairingRejectedException(string message) : InvalidOperationException(message);

/// <summary>
/// The executor of <see cref="PairingMachine"/> for this volume: each event goes through the machine
/// under <see cref="_pairingLock"/> (so events are decided one at a time, in the order they arrive),
/// then its actions run on the replica, the session and the quorum outside the lock. The node drives
/// the events of a connection one at a time (connect, exchange, start, disconnect); disk events come
/// from the I/O paths at any moment and have only actions that run at once.
/// </summary>
internal sealed partial class ReplicatedVolume
{
    private readonly Lock _pairingLock = new();
    private PairingState _pairingState;

    /// <summary>The pairing as it stands (an immutable snapshot).</summary>
    public PairingState PairingState
    {
        get
        {
            lock (_pairingLock)
            {
                return _pairingState;
            }
        }
    }

    /// <summary>
    /// Called when the volume must be paired again on the current connection because its disk was
    /// detached or attached again: the node that dialed pairs it again (the other asks it to).
    /// </summary>
    public Action<ReplicatedVolume, string>? RepairRequested { get; set; }

    /// <summary>
    /// Starts pairing with the peer: waits for changes in flight and holds new ones back until
    /// <see cref="StartAsync"/> (or <see cref="AbandonPairing"/>), so nothing changes while the two
    /// sides compare and exchange bitmaps.
    /// </summary>
    public async Task<PairingHold> BeginPairingAsync(CancellationToken cancellationToken)
    {
        var hold = await _order.AcquireAsync(0, long.MaxValue, cancellationToken);
        var pairing = new PairingHold(this, hold);
        Volatile.Write(ref _pairing, pairing);
        return pairing;
    }

    /// <summary>
    /// VolumeConnect: decides the plan from both replicas' facts (<paramref name="local"/> read after
    /// <see cref="BeginPairingAsync"/>, as sent to the peer) and prepares this replica for it (a full or
    /// compare sync marks its bitmap). A refused plan lets the held writes go at once; the caller then stops.
    /// </summary>
    public async Task<PairingPlan> ConnectAsync(PairingHold hold, ReplicaStatus local, PeerFacts peer)
    {
        var step = Apply(new Connect(peer.Id, peer.Name, Name, local, peer.Status, peer.LocalWinsTies, peer.LocalPreferred, Replica.OutOfSyncBytes));
        await ExecuteAsync(step, hold, null);
        return new PairingPlan(step.State.Decision, local, step.State.Phase == PairingPhase.Refused ? step.State.Problem : null);
    }

    /// <summary>Both bitmaps are exchanged: attaches the session the plan calls for and lets the held writes go.</summary>
    public async Task StartAsync(PairingHold hold, IPeerVolume peer, string peerName, PeerReadLease lease)
    {
        try
        {
            await ExecuteAsync(Apply(new Start(Replica.OutOfSyncBytes)), hold, new SessionParts(peer, peerName, lease));
        }
        finally
        {
            hold.Dispose();
        }
    }

    /// <summary>The pairing failed before it started (a request failed): held writes go on under what was attached before.</summary>
    public void AbandonPairing(PairingHold hold)
    {
        Apply(new Abandon());
        hold.Dispose();
    }

    /// <summary>A new peer connection finished its handshake: a refusal of the previous one is forgotten.</summary>
    public void OnLinkUp() => Apply(new LinkUp());

    /// <summary>The volume cannot be paired for a reason found before any plan (shown in status); ignored while it is paired.</summary>
    public void MarkUnpairable(string problem)
    {
        var step = Apply(new Unpairable(problem));
        if (step.Rejected is null)
        {
            ExecuteAsync(step, null, null).GetAwaiter().GetResult();
        }
    }

    /// <summary>The connection ended: changes in flight that the peer never confirmed mark the bitmap.</summary>
    public Task DisconnectAsync() => ExecuteAsync(Apply(new Disconnected()), null, null);

    /// <summary>Ends the pairing of <paramref name="session"/>'s connection, if it is still the one attached.</summary>
    public Task DetachAsync(ReplicationSession session) => Session == session ? DisconnectAsync() : Task.CompletedTask;

    /// <summary>An admin named this replica as the side of a split brain whose changes are discarded.</summary>
    public void DiscardThisSide() => ExecuteAsync(Apply(new AdminDiscard()), null, null).GetAwaiter().GetResult();

    /// <summary>
    /// The resync source says this replica now holds everything. The resync data is made durable before
    /// the metadata says so: a power loss after the new generation ids are on disk must not leave
    /// stale blocks under ids that call this replica up to date.
    /// </summary>
    public async ValueTask CompleteResyncAsTargetAsync(GenerationIds source, CancellationToken cancellationToken)
    {
        await Replica.FlushAsync(cancellationToken);
        await ExecuteAsync(Apply(new ResyncCompletedAsTarget(source)), null, null);
    }

    /// <summary>This node's resync is complete (the target confirmed); false when the pairing moved on meanwhile (the marks stay).</summary>
    internal bool CompleteResyncAsSource()
    {
        var step = Apply(new ResyncCompletedAsSource());
        if (step.Rejected is { } rejected)
        {
            LogCompletionIgnored(Name, rejected.Why);
            return false;
        }

        ExecuteAsync(step, null, null).GetAwaiter().GetResult();
        return true;
    }

    private PairingStep Apply(PairingEvent e)
    {
        lock (_pairingLock)
        {
            var step = PairingMachine.Next(_pairingState, e);
            _pairingState = step.State;
            return step;
        }
    }

    private async Task ExecuteAsync(PairingStep step, PairingHold? hold, SessionParts? parts)
    {
        foreach (var action in step.Actions)
        {
            try
            {
                await ExecuteAsync(action, step.State, hold, parts);
            }
            catch (BlockDeviceException e) when (IsDiskFault(e) && action is not (Reject or ReattachDisk))
            {
                // The replica's files failed while the pairing wrote them: the disk is detached, and the
                // pairing goes on without it (a new pairing is requested where one is running).
                OnLocalFault(e);
            }
        }
    }

    private async Task ExecuteAsync(PairingAction action, PairingState state, PairingHold? hold, SessionParts? parts)
    {
        switch (action)
        {
            case Reject reject:
                throw new PairingRejectedException($"volume '{Name}': {reject.Why}");
            case Refuse refuse:
                LogRefused(Name, PeerName, refuse.Problem);
                hold?.Dispose();
                break;
            case MarkAllocatedForFullSync:
                Replica.MarkForFullSync(AllocatedRanges());
                break;
            case MarkWholeVolume:
                Replica.MarkForFullSync([(0, Size)]);
                break;
            case SetDiskState set:
                Replica.SetDiskState(set.State);
                break;
            case SetFlags flags:
                Replica.AddFlags(flags.Flags);
                break;
            case Attach attach:
                var session = new ReplicationSession(parts!.Peer, parts.PeerName, attach.LocalIsOwner, attach.Role, parts.Lease)
                {
                    CompareFirst = attach.CompareFirst,
                    LocalHasDisk = attach.LocalHasDisk,
                    PeerHasDisk = attach.PeerHasDisk,
                };
                await AttachSessionAsync(hold!, session, state.Peer, attach.InSync);
                break;
            case ReleaseQuorum:
                _quorum.Release(this);
                break;
            case EndSession:
                await EndSessionAsync();
                break;
            case FinishResyncAsSource:
                Replica.CompleteResyncAsSource();
                EndResyncRole();
                break;
            case FinishResyncAsTarget target:
                Replica.CompleteResyncAsTarget(target.Source);
                EndResyncRole();
                break;
            case DiscardChanges discard:
                Replica.DiscardThisSide(discard.Peer);
                LogDiscarded(Name, PeerName);
                break;
            case DetachDisk detach:
                Replica.Detach(detach.Reason, detach.Full);
                LogDiskDetached(Name, detach.Full ? "its pool is full" : "an I/O error", detach.Reason, PeerName);
                break;
            case ReattachDisk:
                Replica.Reattach(standalone: !HasPeer);
                LogDiskAttached(Name, PeerName);
                break;
            case RequestRepair repair:
                RepairRequested?.Invoke(this, repair.Reason);
                break;
            default:
                throw new InvalidOperationException($"unknown pairing action {action}");
        }
    }

    /// <summary>
    /// Pairs the volume with its peer for one connection and lets writes flow again. A volume paired
    /// again on the same connection (its preferred node changed, or a disk was detached) ends its previous session first.
    /// </summary>
    private async Task AttachSessionAsync(PairingHold hold, ReplicationSession session, Guid peerNodeId, bool inSync)
    {
        try
        {
            // The previous session ends only once the new one is in place: a change waiting for it to end
            // (this replica's disk was detached) must find the new session, not none.
            var previous = Volatile.Read(ref _session);
            if (previous is not null)
            {
                await Resync.StopAsync();
            }

            try
            {
                Replica.OnConnected(peerNodeId, inSync);
            }
            catch (BlockDeviceException e) when (IsDiskFault(e))
            {
                OnLocalFault(e);
            }

            Volatile.Write(ref _lastLease, session.Lease);
            Volatile.Write(ref _session, session);
            previous?.End();
        }
        finally
        {
            hold.Dispose();
        }

        LogAttached(Name, PeerName, session.LocalIsOwner ? "this node" : PeerName, session.Role, Replica.OutOfSyncBytes,
            !session.LocalHasDisk ? "; this replica's disk is detached, the peer serves every request" : !session.PeerHasDisk ? "; the peer's disk is detached, this node serves both" : "");
        if (session.LocalIsOwner && session.LocalHasDisk && session.PeerHasDisk)
        {
            Resync.Start(session);
        }
    }

    private async Task EndSessionAsync()
    {
        if (Interlocked.Exchange(ref _session, null) is not { } session)
        {
            return;
        }

        session.End();
        await Resync.StopAsync();
        try
        {
            Replica.OnDisconnected();
        }
        catch (BlockDeviceException e) when (IsDiskFault(e))
        {
            OnLocalFault(e);
        }

        LogDetached(Name, PeerName, Replica.OutOfSyncBytes);
    }

    private void EndResyncRole()
    {
        if (Session is { } session)
        {
            session.Role = SyncRole.None;
        }
    }

    /// <summary>The allocated ranges of this replica, which a full sync marks.</summary>
    private List<(long Offset, long Length)> AllocatedRanges()
    {
        var ranges = new List<(long, long)>();
        var position = 0L;
        foreach (var extent in _local.GetAllocationAsync(0, Size).AsTask().GetAwaiter().GetResult())
        {
            if ((extent.State & AllocationState.Hole) == 0)
            {
                ranges.Add((position, extent.Length));
            }

            position += extent.Length;
        }

        return ranges;
    }

    private sealed record SessionParts(IPeerVolume Peer, string PeerName, PeerReadLease Lease);

    [LoggerMessage(Level = LogLevel.Information, Message = "Volume {Volume} paired with {Peer}: writes ordered by {Owner}, resync role {Role}, {OutOfSync} bytes out of sync{Disks}")]
    private partial void LogAttached(string volume, string peer, string owner, SyncRole role, long outOfSync, string disks);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Volume} lost its peer {Peer}; {OutOfSync} bytes out of sync so far")]
    private partial void LogDetached(string volume, string peer, long outOfSync);

    [LoggerMessage(Level = LogLevel.Error, Message = "Volume {Volume} stays unpaired from {Peer}: {Problem}")]
    private partial void LogRefused(string volume, string peer, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Volume}: this node's changes since the split brain are discarded by an admin; it resyncs from {Peer}")]
    private partial void LogDiscarded(string volume, string peer);

    [LoggerMessage(Level = LogLevel.Error, Message = "Volume {Volume}: this replica's disk is detached because of {Cause} ({Reason}); its reads and writes go to {Peer}")]
    private partial void LogDiskDetached(string volume, string cause, string reason, string peer);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Volume}: this replica's disk is attached again; it resyncs from {Peer}")]
    private partial void LogDiskAttached(string volume, string peer);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Volume}: a completed resync is not recorded: {Reason}; its marks stay for the next one")]
    private partial void LogCompletionIgnored(string volume, string reason);

    /// <summary>A pairing in progress: holds the volume's writes until it is attached or abandoned.</summary>
    internal sealed class PairingHold(ReplicatedVolume volume, RangeLock.Releaser hold) : IDisposable
    {
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _disposed;

        public Task Done => _done.Task;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                Interlocked.CompareExchange(ref volume._pairing, null, this);
                hold.Dispose();
                _done.TrySetResult();
            }
        }
    }
}

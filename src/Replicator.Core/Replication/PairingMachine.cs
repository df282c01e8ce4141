namespace Replicator.Core.Replication;

/// <summary>The next state and what must be done to get there.</summary>
internal readonly record struct PairingStep(PairingState State, IReadOnlyList<PairingAction> Actions)
{
    /// <summary>The action that refused the event, if it was refused.</summary>
    public Reject? Rejected => Actions.Count == 1 ? Actions[0] as Reject : null;
}

/// <summary>
/// The pairing of one volume with its peer as a pure function, <c>(state, event) → (state, actions)</c>,
/// in the way of hastd's activemap: it does no I/O, it says what must be written and done, and
/// <see cref="ReplicatedVolume"/> (with the node, for what needs the connection) does it. Both nodes
/// run the same machine; <see cref="SyncDecision"/> makes their plans mirror each other.
/// </summary>
/// <remarks>
/// <code>
///   Alone ───Connect───▶ Exchanging ───Start───▶ Paired
///     ▲                   │    ▲                  │  │
///     │   Abandon,        │    └──Connect again───┘  │   (same connection: preferred node changed,
///     ├──Disconnected─────┘       (Abandon: back)    │    a disk detached or attached)
///     ├──Disconnected────────────────────────────────┘
///     │
///     └──LinkUp, AdminDiscard (split brain)──── Refused ◀──── Connect with a refused plan, Unpairable
/// </code>
/// One row per state × event (— : <see cref="Reject"/>, the event does not belong there):
/// <code>
/// event                    Alone               Exchanging                 Paired                      Refused
/// LinkUp                   stays               stays                      stays                       Alone (problem forgotten)
/// Connect                  decide: Exchanging  —                          decide: Exchanging          decide: Exchanging
///                          [mark full/whole]                              (session stays until Start) [mark …]
///                          or Refused [Refuse]                            or Refused [EndSession, Refuse]
/// Start(outOfSync)         —                   Paired [SetDiskState(Inconsistent) as target,
///                                              Attach, ReleaseQuorum when in sync]  —             —
/// Abandon                  stays               Paired if a session stays, else Alone  stays       stays
/// Disconnected             stays               Alone [EndSession if attached] Alone [EndSession]  stays (problem shown)
/// ResyncCompletedAsSource  —                   —                          owner, disk attached: [FinishResyncAsSource, ReleaseQuorum]
/// ResyncCompletedAsTarget  —                   —                          not owner, disk attached: [FinishResyncAsTarget, ReleaseQuorum]
/// Unpairable(problem)      Refused [Refuse]    —                          —                           Refused [Refuse]
/// LocalDiskFailed          [DetachDisk]        [DetachDisk, RequestRepair] [DetachDisk, RequestRepair] [DetachDisk]
/// DiskAttached             [ReattachDisk]      [ReattachDisk, RequestRepair] [ReattachDisk, RequestRepair] [ReattachDisk]
/// PeerDiskFailed           [SetFlags(PeerDiskFailed)] unless already set, in every state
/// AdminDiscard             —                   —                          —                           split brain: Alone [DiscardChanges]
/// </code>
/// Connect decides with <see cref="SyncDecision.Decide"/>. A full plan marks this replica's allocated
/// ranges; a compare plan (after a disk failure) has its target mark the whole volume; a peer whose
/// disk failed is recorded (<see cref="ReplicaFlags.PeerDiskFailed"/>). Start names the owner: the
/// resync source, the side with a disk when the other has none, else the preferred node; the role is
/// none when nothing is out of sync and the plan sends nothing (or a side has no disk). A local disk
/// failure detaches the disk (a second failure while detached changes nothing, except that a failure
/// replaces a full pool as the reason); attaching a disk that is attached is refused.
/// </remarks>
internal static class PairingMachine
{
    public static PairingStep Next(PairingState state, PairingEvent e) => e switch
    {
        LinkUp => state.Phase == PairingPhase.Refused ? Step(state with { Phase = PairingPhase.Alone, Peer = Guid.Empty, Problem = null }) : Step(state),
        Connect connect => OnConnect(state, connect),
        Start start => OnStart(state, start),
        Abandon => state.Phase == PairingPhase.Exchanging
            ? Step(state with { Phase = state.SessionAttached ? PairingPhase.Paired : PairingPhase.Alone })
            : Step(state),
        Disconnected => state.Phase is PairingPhase.Exchanging or PairingPhase.Paired
            ? Step(Detached(state), state.SessionAttached ? [new EndSession()] : [])
            : Step(state),
        ResyncCompletedAsSource => OnCompletedAsSource(state),
        ResyncCompletedAsTarget target => OnCompletedAsTarget(state, target),
        Unpairable unpairable => state.Phase is PairingPhase.Alone or PairingPhase.Refused
            ? Step(state with { Phase = PairingPhase.Refused, Decision = default, Problem = unpairable.Problem }, new Refuse(unpairable.Problem))
            : Reject(state, $"the volume is {Describe(state.Phase)}; it cannot be refused now"),
        LocalDiskFailed failed => OnDiskFailed(state, failed),
        DiskAttached => OnDiskAttached(state),
        PeerDiskFailed peer => peer.Local.PeerLostWrites ? Step(state) : Step(state, new SetFlags(ReplicaFlags.PeerDiskFailed)),
        AdminDiscard => state.Phase == PairingPhase.Refused && state.Decision.Outcome == SyncOutcome.SplitBrain
            ? Step(state with { Phase = PairingPhase.Alone, Peer = Guid.Empty, Problem = null }, new DiscardChanges(state.PeerStatus.Ids))
            : Reject(state, "the volume is not in split brain here; nothing to resolve"),
        _ => throw new ArgumentOutOfRangeException(nameof(e), e, "unknown pairing event"),
    };

    private static PairingStep OnConnect(PairingState state, Connect e)
    {
        if (state.Phase == PairingPhase.Exchanging)
        {
            return Reject(state, $"volume '{e.VolumeName}' is already being paired");
        }

        var decision = SyncDecision.Decide(e.Local, e.PeerStatus, e.LocalWinsTies);
        var planned = state with { Peer = e.Peer, PeerStatus = e.PeerStatus, Decision = decision, LocalPreferred = e.LocalPreferred, Problem = null };
        if (decision.Outcome is SyncOutcome.SplitBrain or SyncOutcome.Unrelated or SyncOutcome.NoUsableSource)
        {
            var problem = decision.Outcome == SyncOutcome.SplitBrain
                ? $"split brain with {e.PeerName}: both replicas were written independently ({decision.Reason}). " +
                  $"This side has {e.LocalOutOfSyncBytes} bytes changed; resolve with 'replicator resync resolve {e.VolumeName} --discard <node>'"
                : $"{decision.Outcome}: {decision.Reason}";
            var refused = Detached(planned) with { Phase = PairingPhase.Refused, Peer = e.Peer, Problem = problem };
            return state.SessionAttached ? Step(refused, new EndSession(), new Refuse(problem)) : Step(refused, new Refuse(problem));
        }

        var actions = new List<PairingAction>();
        if (e.PeerStatus.LostWrites && !e.Local.PeerLostWrites)
        {
            actions.Add(new SetFlags(ReplicaFlags.PeerDiskFailed));
        }

        if (decision.Kind == SyncKind.Full)
        {
            actions.Add(new MarkAllocatedForFullSync());
        }
        else if (decision.Kind == SyncKind.Compare && decision.Outcome == SyncOutcome.BecomeTarget)
        {
            actions.Add(new MarkWholeVolume());
        }

        var compareFirst = e.Local.Crashed || e.PeerStatus.Crashed || decision.Kind == SyncKind.Compare;
        return Step(planned with { Phase = PairingPhase.Exchanging, CompareFirst = compareFirst }, [.. actions]);
    }

    private static PairingStep OnStart(PairingState state, Start e)
    {
        if (state.Phase != PairingPhase.Exchanging)
        {
            return Reject(state, $"the volume is {Describe(state.Phase)}, not being paired");
        }

        var outcome = state.Decision.Outcome;
        var owner = state.PlanMakesLocalOwner;
        var diskless = outcome is SyncOutcome.LocalDiskless or SyncOutcome.PeerDiskless;
        var role = diskless || (e.OutOfSyncBytes == 0 && outcome == SyncOutcome.NoSync) ? SyncRole.None : owner ? SyncRole.Source : SyncRole.Target;

        // A disk detached while the plan was exchanged: the plan still counts it (a new pairing is requested),
        // but nothing is written to it and its metadata keeps saying it has none.
        var localHasDisk = outcome != SyncOutcome.LocalDiskless && state.Disk == DiskAttachment.Attached;
        var inSync = !diskless && role == SyncRole.None && e.OutOfSyncBytes == 0;
        var actions = new List<PairingAction>();
        if (role == SyncRole.Target && localHasDisk)
        {
            actions.Add(new SetDiskState(ReplicaDiskState.Inconsistent));
        }

        actions.Add(new Attach(owner, role, state.CompareFirst, inSync, localHasDisk, outcome != SyncOutcome.PeerDiskless));
        if (inSync)
        {
            actions.Add(new ReleaseQuorum());
        }

        return Step(state with
        {
            Phase = PairingPhase.Paired,
            LocalIsOwner = owner,
            Role = role,
            SessionAttached = true,
            LocalHasDisk = localHasDisk,
            PeerHasDisk = outcome != SyncOutcome.PeerDiskless,
        }, [.. actions]);
    }

    private static PairingStep OnCompletedAsSource(PairingState state) =>
        state.Phase != PairingPhase.Paired || !state.LocalIsOwner || !state.PeerHasDisk
            ? Reject(state, $"the volume is {Describe(state.Phase)}{(state.Phase == PairingPhase.Paired ? ", and this node does not send its resync" : "")}")
            : state.Disk != DiskAttachment.Attached
                ? Reject(state, "this replica's disk is detached; what it sent can no longer be vouched for")
                : Step(state with { Role = SyncRole.None }, new FinishResyncAsSource(), new ReleaseQuorum());

    private static PairingStep OnCompletedAsTarget(PairingState state, ResyncCompletedAsTarget e)
    {
        if (state.Phase != PairingPhase.Paired || state.LocalIsOwner)
        {
            return Reject(state, $"the volume is {Describe(state.Phase)}{(state.Phase == PairingPhase.Paired ? ", and this node sends the resync, it does not receive one" : "")}");
        }

        return state.Disk != DiskAttachment.Attached || !state.LocalHasDisk
            ? Reject(state, "this replica's disk is detached; it cannot take the resync's end")
            : Step(state with { Role = SyncRole.None }, new FinishResyncAsTarget(e.Source), new ReleaseQuorum());
    }

    private static PairingStep OnDiskFailed(PairingState state, LocalDiskFailed e)
    {
        if (state.Disk == DiskAttachment.Failed || (state.Disk == DiskAttachment.Full && e.Full))
        {
            return Step(state);
        }

        var detached = state with { Disk = e.Full ? DiskAttachment.Full : DiskAttachment.Failed };
        return state.Phase is PairingPhase.Exchanging or PairingPhase.Paired
            ? Step(detached, new DetachDisk(e.Reason, e.Full), new RequestRepair(e.Reason))
            : Step(detached, new DetachDisk(e.Reason, e.Full));
    }

    private static PairingStep OnDiskAttached(PairingState state)
    {
        if (state.Disk == DiskAttachment.Attached)
        {
            return Reject(state, "the disk of this replica is attached");
        }

        var attached = state with { Disk = DiskAttachment.Attached };
        return state.Phase is PairingPhase.Exchanging or PairingPhase.Paired
            ? Step(attached, new ReattachDisk(), new RequestRepair("its disk was attached again"))
            : Step(attached, new ReattachDisk());
    }

    /// <summary>The connection's facts forgotten: no peer, no session.</summary>
    private static PairingState Detached(PairingState state) => state with
    {
        Phase = PairingPhase.Alone,
        Peer = Guid.Empty,
        LocalIsOwner = false,
        Role = SyncRole.None,
        SessionAttached = false,
        LocalHasDisk = true,
        PeerHasDisk = true,
    };

    private static string Describe(PairingPhase phase) => phase switch
    {
        PairingPhase.Alone => "not paired",
        PairingPhase.Exchanging => "being paired",
        PairingPhase.Paired => "paired",
        _ => "refused",
    };

    private static PairingStep Step(PairingState state, params PairingAction[] actions) => new(state, actions);

    private static PairingStep Reject(PairingState state, string why) => new(state, [new Reject(why)]);
}

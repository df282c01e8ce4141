using Replicator.Core.Replication;

namespace Replicator.Core.Tests.Replication;

/// <summary>The pairing machine, one row per state × event: the next phase and the actions, in order.</summary>
public sealed class PairingMachineTests
{
    private const ulong X = 0xA1, Y = 0xB2, Z = 0xC3;
    private static readonly Guid PeerId = Guid.Parse("0000000b-0000-0000-0000-00000000000b");
    private static readonly Guid OtherPeer = Guid.Parse("0000000c-0000-0000-0000-00000000000c");

    private static readonly ReplicaStatus Up = Status(Ids(Y));
    private static readonly ReplicaStatus Diskless = Status(Ids(Y), ReplicaDiskState.Diskless, ReplicaFlags.DiskFailed);

    private static readonly PairingState Alone = PairingState.Initial(Up);
    private static readonly PairingState Exchanging = Run(Alone, Connect(Up));
    private static readonly PairingState ExchangingAgain = Run(Alone, Connect(Up), new Start(0), Connect(Up));
    private static readonly PairingState ExchangingAsTarget = Run(Alone, Connect(Status(Ids(X)), Status(Ids(Y, X))));
    private static readonly PairingState PairedOwner = Run(Alone, Connect(Up), new Start(0));
    private static readonly PairingState PairedNonOwner = Run(Alone, Connect(Up, preferred: false), new Start(0));
    private static readonly PairingState PairedSource = Run(Alone, Connect(Status(Ids(Y, X)), Status(Ids(X))), new Start(4096));
    private static readonly PairingState PairedTarget = Run(Alone, Connect(Status(Ids(X)), Status(Ids(Y, X))), new Start(4096));
    private static readonly PairingState PairedDetached = Run(PairedTarget, new LocalDiskFailed("EIO", Full: false));
    private static readonly PairingState PairedPoolFull = Run(PairedNonOwner, new LocalDiskFailed("ENOSPC", Full: true));
    private static readonly PairingState PairedWithoutDisk = Run(PairingState.Initial(Diskless), Connect(Diskless, Up), new Start(0));
    private static readonly PairingState PairedForDisklessPeer = Run(Alone, Connect(Up, Diskless, preferred: false), new Start(0));
    private static readonly PairingState RefusedSplitBrain = Run(Alone, Connect(Status(Ids(Y, X)), Status(Ids(Z, X))));
    private static readonly PairingState RefusedNameClash = Run(Alone, new Unpairable("name clash"));
    private static readonly PairingState DetachedAlone = Run(Alone, new LocalDiskFailed("EIO", Full: false));

    /// <summary>Stands for any <see cref="Reject"/> (its text is for people).</summary>
    private static readonly Reject Rejected = new("*");

    private sealed record Row(PairingState State, PairingEvent Event, PairingPhase Phase, PairingAction[] Actions);

    private static Row R(PairingState state, PairingEvent e, PairingPhase phase, params PairingAction[] actions) => new(state, e, phase, actions);

    private static readonly Dictionary<string, Row> Table = new()
    {
        // Alone
        ["alone: link up"] = R(Alone, new LinkUp(), PairingPhase.Alone),
        ["alone: connect, same data set"] = R(Alone, Connect(Up), PairingPhase.Exchanging),
        ["alone: connect, the peer is empty: full"] = R(Alone, Connect(Up, Status(Ids(0), ReplicaDiskState.Inconsistent)), PairingPhase.Exchanging, new MarkAllocatedForFullSync()),
        ["alone: connect, this disk failed before: compare, marked whole"] = R(Alone,
            Connect(Status(Ids(Y), ReplicaDiskState.Inconsistent, ReplicaFlags.DiskFailed), Up), PairingPhase.Exchanging, new MarkWholeVolume()),
        ["alone: connect, the peer's disk failed before: recorded, compare from here"] = R(Alone,
            Connect(Up, Status(Ids(Y), ReplicaDiskState.Inconsistent, ReplicaFlags.DiskFailed)), PairingPhase.Exchanging, new SetFlags(ReplicaFlags.PeerDiskFailed)),
        ["alone: connect, split brain"] = R(Alone, Connect(Status(Ids(Y, X)), Status(Ids(Z, X))), PairingPhase.Refused, Refusal(Alone, Connect(Status(Ids(Y, X)), Status(Ids(Z, X))))),
        ["alone: connect, no usable source"] = R(Alone, Connect(Status(Ids(X), ReplicaDiskState.Inconsistent), Status(Ids(Y, X), ReplicaDiskState.Inconsistent)), PairingPhase.Refused,
            Refusal(Alone, Connect(Status(Ids(X), ReplicaDiskState.Inconsistent), Status(Ids(Y, X), ReplicaDiskState.Inconsistent)))),
        ["alone: start"] = R(Alone, new Start(0), PairingPhase.Alone, Rejected),
        ["alone: abandon"] = R(Alone, new Abandon(), PairingPhase.Alone),
        ["alone: disconnected"] = R(Alone, new Disconnected(), PairingPhase.Alone),
        ["alone: resync completed as source"] = R(Alone, new ResyncCompletedAsSource(), PairingPhase.Alone, Rejected),
        ["alone: resync completed as target"] = R(Alone, new ResyncCompletedAsTarget(Ids(Y)), PairingPhase.Alone, Rejected),
        ["alone: unpairable"] = R(Alone, new Unpairable("name clash"), PairingPhase.Refused, new Refuse("name clash")),
        ["alone: disk failed"] = R(Alone, new LocalDiskFailed("EIO", Full: false), PairingPhase.Alone, new DetachDisk("EIO", Full: false)),
        ["alone: pool full"] = R(Alone, new LocalDiskFailed("ENOSPC", Full: true), PairingPhase.Alone, new DetachDisk("ENOSPC", Full: true)),
        ["alone: disk attached while attached"] = R(Alone, new DiskAttached(), PairingPhase.Alone, Rejected),
        ["alone: peer disk failed"] = R(Alone, new PeerDiskFailed(Up), PairingPhase.Alone, new SetFlags(ReplicaFlags.PeerDiskFailed)),
        ["alone: peer disk failed, already recorded"] = R(Alone, new PeerDiskFailed(Status(Ids(Y), flags: ReplicaFlags.PeerDiskFailed)), PairingPhase.Alone),
        ["alone: admin discard"] = R(Alone, new AdminDiscard(), PairingPhase.Alone, Rejected),

        // Exchanging
        ["exchanging: link up"] = R(Exchanging, new LinkUp(), PairingPhase.Exchanging),
        ["exchanging: connect again"] = R(Exchanging, Connect(Up), PairingPhase.Exchanging, Rejected),
        ["exchanging: start, in sync, preferred"] = R(Exchanging, new Start(0), PairingPhase.Paired,
            new Attach(LocalIsOwner: true, SyncRole.None, CompareFirst: false, InSync: true, LocalHasDisk: true, PeerHasDisk: true), new ReleaseQuorum()),
        ["exchanging: start, marks to send, preferred"] = R(Exchanging, new Start(4096), PairingPhase.Paired,
            new Attach(LocalIsOwner: true, SyncRole.Source, CompareFirst: false, InSync: false, LocalHasDisk: true, PeerHasDisk: true)),
        ["exchanging: start as target"] = R(ExchangingAsTarget, new Start(4096), PairingPhase.Paired,
            new SetDiskState(ReplicaDiskState.Inconsistent), new Attach(LocalIsOwner: false, SyncRole.Target, CompareFirst: false, InSync: false, LocalHasDisk: true, PeerHasDisk: true)),
        ["exchanging: start as target after the disk failed meanwhile"] = R(Run(ExchangingAsTarget, new LocalDiskFailed("EIO", Full: false)), new Start(4096), PairingPhase.Paired,
            new Attach(LocalIsOwner: false, SyncRole.Target, CompareFirst: false, InSync: false, LocalHasDisk: false, PeerHasDisk: true)),
        ["exchanging: abandon, first pairing"] = R(Exchanging, new Abandon(), PairingPhase.Alone),
        ["exchanging: abandon, pairing again"] = R(ExchangingAgain, new Abandon(), PairingPhase.Paired),
        ["exchanging: disconnected, first pairing"] = R(Exchanging, new Disconnected(), PairingPhase.Alone),
        ["exchanging: disconnected, pairing again"] = R(ExchangingAgain, new Disconnected(), PairingPhase.Alone, new EndSession()),
        ["exchanging: resync completed as source"] = R(ExchangingAgain, new ResyncCompletedAsSource(), PairingPhase.Exchanging, Rejected),
        ["exchanging: resync completed as target"] = R(Exchanging, new ResyncCompletedAsTarget(Ids(Y)), PairingPhase.Exchanging, Rejected),
        ["exchanging: unpairable"] = R(Exchanging, new Unpairable("name clash"), PairingPhase.Exchanging, Rejected),
        ["exchanging: disk failed"] = R(Exchanging, new LocalDiskFailed("EIO", Full: false), PairingPhase.Exchanging, new DetachDisk("EIO", Full: false), new RequestRepair("EIO")),
        ["exchanging: peer disk failed"] = R(Exchanging, new PeerDiskFailed(Up), PairingPhase.Exchanging, new SetFlags(ReplicaFlags.PeerDiskFailed)),
        ["exchanging: admin discard"] = R(Exchanging, new AdminDiscard(), PairingPhase.Exchanging, Rejected),

        // Paired
        ["paired: link up"] = R(PairedOwner, new LinkUp(), PairingPhase.Paired),
        ["paired: connect again (preferred node changed, or a disk)"] = R(PairedOwner, Connect(Up), PairingPhase.Exchanging),
        ["paired: connect again, refused"] = R(PairedOwner, Connect(Status(Ids(Y, X)), Status(Ids(Z, X))), PairingPhase.Refused,
            new EndSession(), Refusal(PairedOwner, Connect(Status(Ids(Y, X)), Status(Ids(Z, X))))),
        ["paired: start"] = R(PairedOwner, new Start(0), PairingPhase.Paired, Rejected),
        ["paired: abandon"] = R(PairedOwner, new Abandon(), PairingPhase.Paired),
        ["paired: disconnected"] = R(PairedOwner, new Disconnected(), PairingPhase.Alone, new EndSession()),
        ["paired: resync completed as source"] = R(PairedSource, new ResyncCompletedAsSource(), PairingPhase.Paired, new FinishResyncAsSource(), new ReleaseQuorum()),
        ["paired: resync of marks completed by the owner, role none"] = R(PairedOwner, new ResyncCompletedAsSource(), PairingPhase.Paired, new FinishResyncAsSource(), new ReleaseQuorum()),
        ["paired: resync completed as source on the non-owner"] = R(PairedNonOwner, new ResyncCompletedAsSource(), PairingPhase.Paired, Rejected),
        ["paired: resync completed as source, this disk detached"] = R(Run(PairedSource, new LocalDiskFailed("EIO", Full: false)), new ResyncCompletedAsSource(), PairingPhase.Paired, Rejected),
        ["paired: resync completed as source, the peer has no disk"] = R(PairedForDisklessPeer, new ResyncCompletedAsSource(), PairingPhase.Paired, Rejected),
        ["paired: resync completed as target"] = R(PairedTarget, new ResyncCompletedAsTarget(Ids(Y, X)), PairingPhase.Paired, new FinishResyncAsTarget(Ids(Y, X)), new ReleaseQuorum()),
        ["paired: resync completed as target on the owner"] = R(PairedSource, new ResyncCompletedAsTarget(Ids(Y, X)), PairingPhase.Paired, Rejected),
        ["paired: resync completed as target, the disk detached"] = R(PairedDetached, new ResyncCompletedAsTarget(Ids(Y, X)), PairingPhase.Paired, Rejected),
        ["paired: unpairable"] = R(PairedOwner, new Unpairable("name clash"), PairingPhase.Paired, Rejected),
        ["paired: disk failed"] = R(PairedOwner, new LocalDiskFailed("EIO", Full: false), PairingPhase.Paired, new DetachDisk("EIO", Full: false), new RequestRepair("EIO")),
        ["paired: pool full"] = R(PairedOwner, new LocalDiskFailed("ENOSPC", Full: true), PairingPhase.Paired, new DetachDisk("ENOSPC", Full: true), new RequestRepair("ENOSPC")),
        ["paired: disk failed again"] = R(PairedDetached, new LocalDiskFailed("EIO", Full: false), PairingPhase.Paired),
        ["paired: pool full after the disk failed"] = R(PairedDetached, new LocalDiskFailed("ENOSPC", Full: true), PairingPhase.Paired),
        ["paired: pool full again"] = R(PairedPoolFull, new LocalDiskFailed("ENOSPC", Full: true), PairingPhase.Paired),
        ["paired: disk failed while the pool is full"] = R(PairedPoolFull, new LocalDiskFailed("EIO", Full: false), PairingPhase.Paired,
            new DetachDisk("EIO", Full: false), new RequestRepair("EIO")),
        ["paired: disk attached again"] = R(PairedDetached, new DiskAttached(), PairingPhase.Paired, new ReattachDisk(), new RequestRepair("its disk was attached again")),
        ["paired: disk attached while attached"] = R(PairedOwner, new DiskAttached(), PairingPhase.Paired, Rejected),
        ["paired without a disk: disk attached again"] = R(PairedWithoutDisk, new DiskAttached(), PairingPhase.Paired, new ReattachDisk(), new RequestRepair("its disk was attached again")),
        ["paired: peer disk failed"] = R(PairedOwner, new PeerDiskFailed(Up), PairingPhase.Paired, new SetFlags(ReplicaFlags.PeerDiskFailed)),
        ["paired: admin discard"] = R(PairedOwner, new AdminDiscard(), PairingPhase.Paired, Rejected),

        // Refused
        ["refused: link up"] = R(RefusedSplitBrain, new LinkUp(), PairingPhase.Alone),
        ["refused: connect, resolved meanwhile"] = R(RefusedSplitBrain, Connect(Up), PairingPhase.Exchanging),
        ["refused: connect, still split"] = R(RefusedSplitBrain, Connect(Status(Ids(Y, X)), Status(Ids(Z, X))), PairingPhase.Refused,
            Refusal(RefusedSplitBrain, Connect(Status(Ids(Y, X)), Status(Ids(Z, X))))),
        ["refused: start"] = R(RefusedSplitBrain, new Start(0), PairingPhase.Refused, Rejected),
        ["refused: abandon"] = R(RefusedSplitBrain, new Abandon(), PairingPhase.Refused),
        ["refused: disconnected (the problem stays shown)"] = R(RefusedSplitBrain, new Disconnected(), PairingPhase.Refused),
        ["refused: resync completed as source"] = R(RefusedSplitBrain, new ResyncCompletedAsSource(), PairingPhase.Refused, Rejected),
        ["refused: resync completed as target"] = R(RefusedSplitBrain, new ResyncCompletedAsTarget(Ids(Z, X)), PairingPhase.Refused, Rejected),
        ["refused: unpairable"] = R(RefusedSplitBrain, new Unpairable("name clash"), PairingPhase.Refused, new Refuse("name clash")),
        ["refused: disk failed"] = R(RefusedSplitBrain, new LocalDiskFailed("EIO", Full: false), PairingPhase.Refused, new DetachDisk("EIO", Full: false)),
        ["refused: disk attached again"] = R(Run(RefusedSplitBrain, new LocalDiskFailed("EIO", Full: false)), new DiskAttached(), PairingPhase.Refused, new ReattachDisk()),
        ["refused: peer disk failed"] = R(RefusedSplitBrain, new PeerDiskFailed(Up), PairingPhase.Refused, new SetFlags(ReplicaFlags.PeerDiskFailed)),
        ["refused: admin discard, split brain"] = R(RefusedSplitBrain, new AdminDiscard(), PairingPhase.Alone, new DiscardChanges(Ids(Z, X))),
        ["refused: admin discard, a name clash"] = R(RefusedNameClash, new AdminDiscard(), PairingPhase.Refused, Rejected),

        // A detached disk, alone
        ["detached alone: disk attached again"] = R(DetachedAlone, new DiskAttached(), PairingPhase.Alone, new ReattachDisk()),
        ["detached alone: connect, the peer serves both"] = R(PairingState.Initial(Diskless), Connect(Diskless, Up), PairingPhase.Exchanging),
        ["detached alone: start, the peer serves both"] = R(Run(PairingState.Initial(Diskless), Connect(Diskless, Up)), new Start(0), PairingPhase.Paired,
            new Attach(LocalIsOwner: false, SyncRole.None, CompareFirst: false, InSync: false, LocalHasDisk: false, PeerHasDisk: true)),
        ["alone: start, serving a peer without a disk"] = R(Run(Alone, Connect(Up, Diskless, preferred: false)), new Start(0), PairingPhase.Paired,
            new Attach(LocalIsOwner: true, SyncRole.None, CompareFirst: false, InSync: false, LocalHasDisk: true, PeerHasDisk: false)),
        ["alone: connect, the peer without a disk is not served by an outdated replica"] = R(Alone, Connect(Status(Ids(Y), ReplicaDiskState.Outdated), Diskless), PairingPhase.Refused,
            Refusal(Alone, Connect(Status(Ids(Y), ReplicaDiskState.Outdated), Diskless))),
    };

    public static TheoryData<string> Rows => new(Table.Keys);

    [Theory]
    [MemberData(nameof(Rows))]
    public void Each_row_gives_the_next_phase_and_the_actions_in_order(string name)
    {
        var row = Table[name];
        var step = PairingMachine.Next(row.State, row.Event);

        Assert.Equal(row.Phase, step.State.Phase);
        Assert.Equal(row.Actions.Length, step.Actions.Count);
        for (var i = 0; i < row.Actions.Length; i++)
        {
            if (row.Actions[i] == Rejected)
            {
                var reject = Assert.IsType<Reject>(step.Actions[i]);
                Assert.False(string.IsNullOrWhiteSpace(reject.Why));
            }
            else
            {
                Assert.Equal(row.Actions[i], step.Actions[i]);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Rows))]
    public void A_rejected_event_changes_nothing(string name)
    {
        var row = Table[name];
        var step = PairingMachine.Next(row.State, row.Event);

        if (step.Rejected is not null)
        {
            Assert.Same(row.State, step.State);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Both_sides_of_a_plan_agree_on_one_owner(bool localPreferred)
    {
        ReplicaStatus[] statuses =
        [
            Up, Status(Ids(Y, X)), Status(Ids(X)), Status(Ids(0), ReplicaDiskState.Inconsistent), Diskless,
            Status(Ids(Y), flags: ReplicaFlags.CrashedWhileConnected), Status(Ids(Y), ReplicaDiskState.Inconsistent, ReplicaFlags.DiskFailed),
        ];
        foreach (var local in statuses)
        {
            foreach (var peer in statuses)
            {
                var here = PairingMachine.Next(PairingState.Initial(local), new Connect(PeerId, "b", "vol0", local, peer, true, localPreferred, 0)).State;
                var there = PairingMachine.Next(PairingState.Initial(peer), new Connect(PeerId, "a", "vol0", peer, local, false, !localPreferred, 0)).State;
                Assert.Equal(here.Phase, there.Phase);
                if (here.Phase == PairingPhase.Exchanging)
                {
                    Assert.NotEqual(here.PlanMakesLocalOwner, there.PlanMakesLocalOwner);
                }
            }
        }
    }

    [Fact]
    public void The_pairing_answers_whether_the_volume_is_paired_with_a_node_and_who_sends_the_resync()
    {
        Assert.False(Alone.IsPairedWith(PeerId));
        Assert.True(Exchanging.IsPairedWith(PeerId));
        Assert.True(Exchanging.ExchangesBitmapsWith(PeerId));
        Assert.False(Exchanging.ExchangesBitmapsWith(OtherPeer));
        Assert.True(PairedOwner.IsPairedWith(PeerId));
        Assert.False(PairedOwner.IsPairedWith(OtherPeer));
        Assert.False(PairedOwner.ExchangesBitmapsWith(PeerId));
        Assert.False(RefusedSplitBrain.IsPairedWith(PeerId));
        Assert.False(Run(PairedOwner, new Disconnected()).IsPairedWith(PeerId));

        Assert.Equal(ResyncSource.Local, PairedSource.ResyncSource);
        Assert.Equal(ResyncSource.Peer, PairedTarget.ResyncSource);
        Assert.Equal(ResyncSource.Local, PairedOwner.ResyncSource);
        Assert.Equal(ResyncSource.Peer, PairedNonOwner.ResyncSource);
        Assert.Equal(ResyncSource.None, PairedWithoutDisk.ResyncSource);
        Assert.Equal(ResyncSource.None, PairedForDisklessPeer.ResyncSource);
        Assert.Equal(ResyncSource.None, Exchanging.ResyncSource);
        Assert.Equal(ResyncSource.None, Alone.ResyncSource);
    }

    [Fact]
    public void A_replica_opened_without_a_disk_starts_detached_for_the_recorded_reason()
    {
        Assert.Equal(DiskAttachment.Attached, PairingState.Initial(Up).Disk);
        Assert.Equal(DiskAttachment.Failed, PairingState.Initial(Diskless).Disk);
        Assert.Equal(DiskAttachment.Full, PairingState.Initial(Status(Ids(Y), ReplicaDiskState.Diskless, ReplicaFlags.PoolFull)).Disk);
        Assert.Equal(DiskAttachment.Failed, PairingState.Initial(Status(Ids(Y), ReplicaDiskState.Diskless)).Disk);
    }

    [Fact]
    public void A_split_brain_is_refused_with_a_text_that_says_how_to_resolve_it()
    {
        var step = PairingMachine.Next(Alone, Connect(Status(Ids(Y, X)), Status(Ids(Z, X))) with { LocalOutOfSyncBytes = 8192 });

        var refuse = Assert.IsType<Refuse>(Assert.Single(step.Actions));
        Assert.StartsWith("split brain with b: both replicas were written independently", refuse.Problem);
        Assert.Contains("This side has 8192 bytes changed", refuse.Problem);
        Assert.Contains("replicator resync resolve vol0 --discard <node>", refuse.Problem);
        Assert.Equal(refuse.Problem, step.State.Problem);
        Assert.Equal(Ids(Z, X), step.State.PeerStatus.Ids);
    }

    private static Connect Connect(ReplicaStatus local, ReplicaStatus? peer = null, bool preferred = true) =>
        new(PeerId, "b", "vol0", local, peer ?? local, LocalWinsTies: true, LocalPreferred: preferred, LocalOutOfSyncBytes: 0);

    private static PairingAction Refusal(PairingState state, Connect connect) => Assert.IsType<Refuse>(PairingMachine.Next(state, connect).Actions[^1]);

    private static PairingState Run(PairingState state, params PairingEvent[] events)
    {
        foreach (var e in events)
        {
            var step = PairingMachine.Next(state, e);
            Assert.Null(step.Rejected);
            state = step.State;
        }

        return state;
    }

    private static ReplicaStatus Status(GenerationIds ids, ReplicaDiskState disk = ReplicaDiskState.UpToDate, ReplicaFlags flags = ReplicaFlags.None) => new(ids, disk, flags);

    private static GenerationIds Ids(ulong current, ulong bitmap = 0, ulong h0 = 0) => new(current, bitmap, h0, 0);
}

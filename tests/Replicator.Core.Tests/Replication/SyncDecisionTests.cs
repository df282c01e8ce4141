using Replicator.Core.Replication;
using static Replicator.Core.Replication.ReplicaDiskState;
using static Replicator.Core.Replication.SyncKind;
using static Replicator.Core.Replication.SyncOutcome;

namespace Replicator.Core.Tests.Replication;

public class SyncDecisionTests
{
    private const ulong CT = GenerationIds.CreatedTogether;
    private const ulong X = 0xA1, Y = 0xB2, Z = 0xC3, W = 0xD4, V = 0xE5;
    private const ReplicaFlags Crashed = ReplicaFlags.CrashedWhileConnected;
    private const ReplicaFlags LostBitmap = ReplicaFlags.FullSyncRequired;
    private const ReplicaFlags Failed = ReplicaFlags.DiskFailed;
    private const ReplicaFlags SawPeerFail = ReplicaFlags.PeerDiskFailed;

    private sealed record Row(
        GenerationIds Local, ReplicaDiskState LocalDisk, ReplicaFlags LocalFlags,
        GenerationIds Peer, ReplicaDiskState PeerDisk, ReplicaFlags PeerFlags,
        bool LocalWinsTies, SyncOutcome Outcome, SyncKind Kind, int Rule);

    private static GenerationIds Ids(ulong current, ulong bitmap = 0, ulong h0 = 0, ulong h1 = 0) => new(current, bitmap, h0, h1);

    private static Row R(GenerationIds local, GenerationIds peer, SyncOutcome outcome, SyncKind kind, int rule,
        ReplicaDiskState localDisk = UpToDate, ReplicaDiskState peerDisk = UpToDate,
        ReplicaFlags localFlags = ReplicaFlags.None, ReplicaFlags peerFlags = ReplicaFlags.None, bool localWinsTies = true) =>
        new(local, localDisk, localFlags, peer, peerDisk, peerFlags, localWinsTies, outcome, kind, rule);

    private static readonly Dictionary<string, Row> Table = new()
    {
        ["created together on both nodes"] = R(Ids(CT), Ids(CT), NoSync, None, 40),
        ["same data set"] = R(Ids(Y, 0, X), Ids(Y, 0, X), NoSync, None, 40),
        ["both empty"] = R(Ids(0), Ids(0), NoUsableSource, None, 10, Inconsistent, Inconsistent),
        ["an empty new replica joins one with data"] = R(Ids(0), Ids(Y, X), BecomeTarget, Full, 20, Inconsistent),
        ["the peer is an empty new replica"] = R(Ids(Y, X), Ids(0), BecomeSource, Full, 30, peerDisk: Inconsistent),
        ["an empty replica joins a fresh volume"] = R(Ids(0), Ids(CT), BecomeTarget, Full, 20, Inconsistent),
        ["the peer wrote alone since this data set"] = R(Ids(X), Ids(Y, X), BecomeTarget, Bitmap, 50, Outdated),
        ["this replica wrote alone since the peer's data set"] = R(Ids(Y, X), Ids(X), BecomeSource, Bitmap, 60, peerDisk: Outdated),
        ["a volume created while the peer was away, then written"] = R(Ids(Y, CT), Ids(CT), BecomeSource, Bitmap, 60),
        ["the peer moved on past this data set (history 0)"] = R(Ids(X), Ids(Z, 0, X), BecomeTarget, Full, 70),
        ["the peer moved on past this data set (history 1)"] = R(Ids(X), Ids(Z, 0, Y, X), BecomeTarget, Full, 70),
        ["this replica moved on past the peer's data set"] = R(Ids(Z, 0, Y, X), Ids(Y), BecomeSource, Full, 80),
        ["a bitmap id does not reach back to an older data set"] = R(Ids(X), Ids(Z, Y, X), BecomeTarget, Full, 70),
        ["split brain: both wrote alone since the same data set"] = R(Ids(Y, X), Ids(Z, X), SplitBrain, Bitmap, 90),
        ["split brain: a common ancestor in both histories"] = R(Ids(Y, 0, X), Ids(Z, 0, W, X), SplitBrain, Full, 100),
        ["split brain: one side's bitmap id in the other's history"] = R(Ids(Y, X), Ids(Z, 0, X), SplitBrain, Full, 100),
        ["unrelated data sets"] = R(Ids(Y, X, W), Ids(Z, V), Unrelated, None, 110),
        ["unrelated fresh volumes with one written"] = R(Ids(Y, X), Ids(CT), Unrelated, None, 110),
        ["same data set, this replica crashed while connected: the peer, which stayed up, sends"] = R(Ids(Y), Ids(Y), BecomeTarget, Bitmap, 42, localFlags: Crashed),
        ["same data set, the peer crashed while connected: this replica, which stayed up, sends"] = R(Ids(Y), Ids(Y), BecomeSource, Bitmap, 41, peerFlags: Crashed),
        ["same data set, a crash outweighs a bitmap id left by an unrecorded resync end"] = R(Ids(Y, X), Ids(Y, 0, X), BecomeTarget, Bitmap, 42, localFlags: Crashed),
        ["same data set, both did not record a resync end: the tie-breaker"] = R(Ids(Y, X), Ids(Y, X), BecomeSource, Bitmap, 43),
        ["same data set, both crashed, this node wins the tie"] = R(Ids(Y), Ids(Y), BecomeSource, Bitmap, 43, localFlags: Crashed, peerFlags: Crashed),
        ["same data set, both crashed, the peer wins the tie"] = R(Ids(Y), Ids(Y), BecomeTarget, Bitmap, 43, localFlags: Crashed, peerFlags: Crashed, localWinsTies: false),
        ["same data set, this replica did not record the end of its resync"] = R(Ids(Y, X), Ids(Y, 0, X), BecomeSource, Bitmap, 41),
        ["an interrupted resync left this replica inconsistent"] = R(Ids(X), Ids(Y, X), BecomeTarget, Bitmap, 50, Inconsistent),
        ["an inconsistent peer with the same data set"] = R(Ids(Y), Ids(Y), BecomeSource, Bitmap, 3, peerDisk: Inconsistent),
        ["the inconsistent side never becomes the source"] = R(Ids(Y, X), Ids(X), BecomeTarget, Bitmap, 3, Inconsistent),
        ["an inconsistent peer keeps a full sync full"] = R(Ids(X), Ids(Z, 0, Y, X), BecomeSource, Full, 3, peerDisk: Inconsistent),
        ["both inconsistent"] = R(Ids(X), Ids(Y, X), NoUsableSource, None, 2, Inconsistent, Inconsistent),
        ["an empty replica and an inconsistent peer"] = R(Ids(0), Ids(Y), NoUsableSource, None, 2, Inconsistent, Inconsistent),
        ["split brain stays split brain when one side is inconsistent"] = R(Ids(Y, X), Ids(Z, X), SplitBrain, Bitmap, 90, Inconsistent),
        ["unrelated stays unrelated when one side is inconsistent"] = R(Ids(Y), Ids(Z), Unrelated, None, 110, peerDisk: Inconsistent),
        ["this node has no disk: the peer serves both"] = R(Ids(Y), Ids(Y), LocalDiskless, None, 4, Diskless, localFlags: Failed),
        ["the peer has no disk: this node serves both"] = R(Ids(Y), Ids(Y), PeerDiskless, None, 4, peerDisk: Diskless, peerFlags: ReplicaFlags.PoolFull),
        ["the peer's disk state is unknown: it counts as none"] = R(Ids(Y), Ids(Y), PeerDiskless, None, 4, peerDisk: Unknown),
        ["no disk here, the peer wrote alone since: it serves both"] = R(Ids(X), Ids(Y, X), LocalDiskless, None, 4, Diskless),
        ["no disk here, and it had received a full sync"] = R(Ids(0), Ids(Y), LocalDiskless, None, 4, Diskless),
        ["no disk on either side"] = R(Ids(Y), Ids(Y), NoUsableSource, None, 1, Diskless, Diskless),
        ["no disk here and the peer is not up to date"] = R(Ids(Y), Ids(Y), NoUsableSource, None, 1, Diskless, Outdated),
        ["no disk here and the peer is inconsistent"] = R(Ids(X), Ids(Y, X), NoUsableSource, None, 1, Diskless, Inconsistent),
        ["no disk here, but this replica wrote alone since the peer's data set"] = R(Ids(Y, X), Ids(X), NoUsableSource, None, 1, Diskless),
        ["no disk on the peer, which moved on past this data set"] = R(Ids(X), Ids(Z, 0, X), NoUsableSource, None, 1, peerDisk: Diskless),
        ["no disk here, in split brain"] = R(Ids(Y, X), Ids(Z, X), SplitBrain, Bitmap, 90, Diskless),
        ["the peer's disk failed and was attached again: every region is compared"] = R(Ids(Y), Ids(Y), BecomeSource, Compare, 5, peerDisk: Inconsistent, peerFlags: Failed),
        ["this replica saw the peer's disk fail, the peer did not record it"] = R(Ids(Y), Ids(Y), BecomeSource, Compare, 5, localFlags: SawPeerFail),
        ["this replica's disk failed, the peer wrote alone since"] = R(Ids(X), Ids(Y, X), BecomeTarget, Compare, 5, Inconsistent, localFlags: Failed),
        ["the peer saw this disk fail while it wrote alone"] = R(Ids(X), Ids(Y, X), BecomeTarget, Compare, 5, peerFlags: SawPeerFail),
        ["the disks of both replicas failed"] = R(Ids(Y), Ids(Y), NoUsableSource, None, 5, localFlags: Failed, peerFlags: Failed),
        ["a failed disk that needs a full sync gets a full one"] = R(Ids(X), Ids(Z, 0, Y, X), BecomeTarget, Full, 70, localFlags: Failed),
        ["a failed disk does not change a split brain"] = R(Ids(Y, X), Ids(Z, X), SplitBrain, Bitmap, 90, localFlags: Failed),
        ["a failed disk whose replica wrote alone since stays the source (a second fault)"] = R(Ids(Y, X), Ids(X), BecomeSource, Bitmap, 60, localFlags: Failed),
        ["a lost bitmap does not turn a compare resync full"] = R(Ids(Y), Ids(Y), BecomeSource, Compare, 5, peerFlags: Failed | LostBitmap),
        ["a lost bitmap here makes the bitmap resync full"] = R(Ids(Y, X), Ids(X), BecomeSource, Full, 60, localFlags: LostBitmap),
        ["a lost bitmap on the peer makes the bitmap resync full"] = R(Ids(X), Ids(Y, X), BecomeTarget, Full, 50, peerFlags: LostBitmap),
        ["a lost bitmap with the same data set costs nothing"] = R(Ids(Y), Ids(Y), NoSync, None, 40, localFlags: LostBitmap),
        ["a lost bitmap does not change a split brain"] = R(Ids(Y, X), Ids(Z, X), SplitBrain, Bitmap, 90, localFlags: LostBitmap),
    };

    public static TheoryData<string> Rows => new(Table.Keys);

    [Theory]
    [MemberData(nameof(Rows))]
    public void Decides_each_row_of_the_table(string name)
    {
        var row = Table[name];
        var decision = SyncDecision.Decide(
            new ReplicaStatus(row.Local, row.LocalDisk, row.LocalFlags),
            new ReplicaStatus(row.Peer, row.PeerDisk, row.PeerFlags),
            row.LocalWinsTies);
        Assert.Equal((row.Outcome, row.Kind, row.Rule), (decision.Outcome, decision.Kind, decision.Rule));
        Assert.False(string.IsNullOrWhiteSpace(decision.Reason));
    }

    [Theory]
    [MemberData(nameof(Rows))]
    public void The_peer_reaches_the_mirrored_decision(string name)
    {
        var row = Table[name];
        var local = SyncDecision.Decide(
            new ReplicaStatus(row.Local, row.LocalDisk, row.LocalFlags),
            new ReplicaStatus(row.Peer, row.PeerDisk, row.PeerFlags),
            row.LocalWinsTies);
        var peer = SyncDecision.Decide(
            new ReplicaStatus(row.Peer, row.PeerDisk, row.PeerFlags),
            new ReplicaStatus(row.Local, row.LocalDisk, row.LocalFlags),
            !row.LocalWinsTies);
        var mirrored = local.Outcome switch
        {
            BecomeSource => BecomeTarget,
            BecomeTarget => BecomeSource,
            LocalDiskless => PeerDiskless,
            PeerDiskless => LocalDiskless,
            var same => same,
        };
        Assert.Equal(mirrored, peer.Outcome);
        Assert.Equal(local.Kind, peer.Kind);
    }

    [Fact]
    public void IsSplitBrain_names_the_sync_that_can_repair_it()
    {
        Assert.True(SyncDecision.IsSplitBrain(Ids(Y, X), Ids(Z, X), out var bitmap));
        Assert.Equal(Bitmap, bitmap);
        Assert.True(SyncDecision.IsSplitBrain(Ids(Y, 0, X), Ids(Z, 0, W, X), out var full));
        Assert.Equal(Full, full);
        Assert.False(SyncDecision.IsSplitBrain(Ids(Y, X), Ids(X), out _));
        Assert.False(SyncDecision.IsSplitBrain(Ids(Y), Ids(Z), out _));
    }
}

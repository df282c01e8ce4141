namespace Replicator.Core.Replication;

internal enum SyncOutcome
{
    /// <summary>The replicas hold the same data set: nothing to send.</summary>
    NoSync,

    /// <summary>This replica sends the difference to its peer.</summary>
    BecomeSource,

    /// <summary>This replica receives the difference from its peer.</summary>
    BecomeTarget,

    /// <summary>Both replicas were written independently since they last agreed. Reported, never resolved silently.</summary>
    SplitBrain,

    /// <summary>The replicas share no data set: different volumes, or a disk from elsewhere. Refused.</summary>
    Unrelated,

    /// <summary>Neither replica holds a usable copy (both empty or inconsistent, or a disk is missing). Refused.</summary>
    NoUsableSource,

    /// <summary>
    /// This replica has no disk (it failed or its pool is full): the peer, up to date, orders every write
    /// and serves this node's reads; nothing is sent until a disk is attached again.
    /// </summary>
    LocalDiskless,

    /// <summary>The peer has no disk: this replica orders every write, serves the peer's reads and marks what the peer misses.</summary>
    PeerDiskless,
}

internal enum SyncKind
{
    None,

    /// <summary>Only the regions set in either replica's dirty bitmap (their union) are sent.</summary>
    Bitmap,

    /// <summary>
    /// Every region allocated on either replica: each side marks its allocated ranges in its bitmap
    /// (<see cref="DirtyBitmap.MarkAll"/>) and the union is sent, holes as trims.
    /// </summary>
    Full,

    /// <summary>
    /// After a disk failure: every region is compared by checksum and those that differ are sent, besides
    /// the regions either bitmap marks. The target marks its whole volume before the exchange (so the source
    /// sees each region the source did not mark itself as one that may match), and the session compares first.
    /// </summary>
    Compare,
}

/// <summary>
/// What two replicas do when they connect, decided from their generation identifiers and disk
/// states alone. Both nodes run it with the arguments swapped and reach mirrored answers.
/// </summary>
/// <param name="Rule">Which rule decided (stable numbers, for logs and status output).</param>
/// <param name="Reason">The rule in words, for people.</param>
internal readonly record struct SyncDecision(SyncOutcome Outcome, SyncKind Kind, int Rule, string Reason)
{
    /// <summary>
    /// Decides from this replica's point of view. The identifier rules, first match wins
    /// (DRBD's <c>drbd_uuid_compare</c> in spirit; L is this replica, P its peer):
    /// <code>
    ///  10  both Empty                               no usable source
    ///  20  L Empty                                  L target, full
    ///  30  P Empty                                  L source, full
    ///  40  L.Current == P.Current                   no sync, unless a side crashed while connected: the other
    ///                                               (which stayed up, so holds every acknowledged write) is the
    ///                                               source by bitmap (41, 42); or, with no crash, a side still
    ///                                               holds a bitmap id (a resync whose end it did not record):
    ///                                               that side is the source; both: the tie-breaker decides (43)
    ///  50  P.Bitmap == L.Current                    L target, bitmap   (P wrote alone since L's data set)
    ///  60  L.Bitmap == P.Current                    L source, bitmap
    ///  70  L.Current in P.History                   L target, full     (P moved on, its bitmap no longer reaches back)
    ///  80  P.Current in L.History                   L source, full
    ///  90  L.Bitmap == P.Bitmap != 0                split brain; the union of both bitmaps can repair it
    /// 100  L and P share a bitmap or history id     split brain; only a full sync can repair it
    /// 110  otherwise                                unrelated
    /// </code>
    /// Then the disk states: a replica without a disk pairs with an up-to-date peer that serves for both
    /// (rule 4), unless the identifiers show it holds writes the peer lacks, or the peer is not up to date,
    /// or neither has a disk (rule 1: no usable source); two inconsistent
    /// replicas have no source (rule 2); when exactly one is inconsistent, the consistent one is the
    /// source (rule 3 where that changes the answer; by bitmap unless the identifiers asked for a
    /// full sync), as an interrupted resync leaves its target inconsistent. Split brain and unrelated are never overridden.
    /// Then a replica whose disk failed (<see cref="ReplicaFlags.DiskFailed"/>, or its peer's
    /// <see cref="ReplicaFlags.PeerDiskFailed"/>) may have lost writes its bitmap cannot name: where the
    /// identifiers had it receive a bitmap resync or nothing, it receives a <see cref="SyncKind.Compare"/>
    /// resync (rule 5); both disks failed: no usable source (rule 5).
    /// Last, a bitmap resync becomes a full one when either replica lost its bitmap
    /// (<see cref="ReplicaFlags.FullSyncRequired"/>).
    /// </summary>
    /// <param name="localWinsTies">
    /// Breaks rule 40 when both replicas crashed while connected; the two nodes must pass opposite
    /// values (for example: this node's id sorts before its peer's).
    /// </param>
    public static SyncDecision Decide(ReplicaStatus local, ReplicaStatus peer, bool localWinsTies)
    {
        if (!local.HasDisk || !peer.HasDisk)
        {
            return Diskless(local, peer, localWinsTies);
        }

        var decision = ApplyLostWrites(ApplyDiskStates(CompareIds(local, peer, localWinsTies), local, peer), local, peer);
        if (decision.Kind == SyncKind.Bitmap && decision.Outcome != SyncOutcome.SplitBrain && (local.NeedsFullSync || peer.NeedsFullSync))
        {
            var side = local.NeedsFullSync ? "this replica" : "the peer";
            return decision with { Kind = SyncKind.Full, Reason = $"{decision.Reason}; full because {side} lost its bitmap" };
        }

        return decision;
    }

    /// <summary>Whether the identifiers show a split brain (rules 90 and 100), and which sync can repair it.</summary>
    public static bool IsSplitBrain(GenerationIds local, GenerationIds peer, out SyncKind repair)
    {
        var decision = CompareIds(new ReplicaStatus(local, ReplicaDiskState.UpToDate), new ReplicaStatus(peer, ReplicaDiskState.UpToDate), true);
        repair = decision.Kind;
        return decision.Outcome == SyncOutcome.SplitBrain;
    }

    /// <summary>Rules 1 and 4: one replica (or both) has no disk.</summary>
    private static SyncDecision Diskless(ReplicaStatus local, ReplicaStatus peer, bool localWinsTies)
    {
        if (!local.HasDisk && !peer.HasDisk)
        {
            return new(SyncOutcome.NoUsableSource, SyncKind.None, 1, "neither replica has a usable disk");
        }

        var localServes = local.HasDisk;
        var (serving, servingName, disklessName) = localServes ? (local, "this replica", "the peer") : (peer, "the peer", "this replica");
        if (serving.Disk != ReplicaDiskState.UpToDate)
        {
            return new(SyncOutcome.NoUsableSource, SyncKind.None, 1,
                $"{disklessName} has no usable disk and {servingName} is {serving.Disk.ToString().ToLowerInvariant()}, not up to date");
        }

        var byIds = CompareIds(local, peer, localWinsTies);
        if (byIds.Outcome is SyncOutcome.SplitBrain or SyncOutcome.Unrelated or SyncOutcome.NoUsableSource)
        {
            return byIds;
        }

        // Rules 50 to 80 name a replica that wrote alone since the other's data set: if that is the one
        // without a disk, the writes it acknowledged alone exist nowhere else.
        var disklessIsNewer = byIds.Rule is 50 or 60 or 70 or 80 && (byIds.Outcome == SyncOutcome.BecomeSource) != localServes;
        if (disklessIsNewer)
        {
            return new(SyncOutcome.NoUsableSource, SyncKind.None, 1, $"{disklessName} has no usable disk but holds writes {servingName} lacks ({byIds.Reason})");
        }

        return localServes
            ? new(SyncOutcome.PeerDiskless, SyncKind.None, 4, "the peer has no usable disk: this replica serves the volume for both nodes")
            : new(SyncOutcome.LocalDiskless, SyncKind.None, 4, "this replica has no usable disk: the peer serves the volume for both nodes");
    }

    /// <summary>Rule 5: a replica whose disk failed receives a resync that compares every region.</summary>
    private static SyncDecision ApplyLostWrites(SyncDecision decision, ReplicaStatus local, ReplicaStatus peer)
    {
        var localLost = local.LostWrites || peer.PeerLostWrites;
        var peerLost = peer.LostWrites || local.PeerLostWrites;
        if ((!localLost && !peerLost) || decision.Outcome is not (SyncOutcome.NoSync or SyncOutcome.BecomeSource or SyncOutcome.BecomeTarget))
        {
            return decision;
        }

        if (localLost && peerLost)
        {
            return new(SyncOutcome.NoUsableSource, SyncKind.None, 5, "the disks of both replicas failed: neither holds every acknowledged write for certain");
        }

        var outcome = localLost ? SyncOutcome.BecomeTarget : SyncOutcome.BecomeSource;
        if ((decision.Outcome != SyncOutcome.NoSync && decision.Outcome != outcome) || decision.Kind == SyncKind.Full)
        {
            // The identifiers say the replica whose disk failed wrote alone since (a second fault), or a full sync is due anyway.
            return decision;
        }

        var side = localLost ? "this replica's" : "the peer's";
        return new(outcome, SyncKind.Compare, 5, $"{side} disk failed and may have lost writes: every region is compared ({decision.Reason})");
    }

    private static SyncDecision ApplyDiskStates(SyncDecision byIds, ReplicaStatus local, ReplicaStatus peer)
    {
        if (byIds.Outcome is SyncOutcome.SplitBrain or SyncOutcome.Unrelated or SyncOutcome.NoUsableSource)
        {
            return byIds;
        }

        if (!local.IsConsistent && !peer.IsConsistent)
        {
            return new(SyncOutcome.NoUsableSource, SyncKind.None, 2, "both replicas are inconsistent");
        }

        if (local.IsConsistent == peer.IsConsistent)
        {
            return byIds;
        }

        var kind = byIds.Kind == SyncKind.Full ? SyncKind.Full : SyncKind.Bitmap;
        var outcome = local.IsConsistent ? SyncOutcome.BecomeSource : SyncOutcome.BecomeTarget;
        if (byIds.Outcome == outcome && byIds.Kind == kind)
        {
            return byIds;
        }

        return local.IsConsistent
            ? Source(kind, 3, $"the peer is inconsistent, overriding: {byIds.Reason}")
            : Target(kind, 3, $"this replica is inconsistent, overriding: {byIds.Reason}");
    }

    private static SyncDecision CompareIds(ReplicaStatus localStatus, ReplicaStatus peerStatus, bool localWinsTies)
    {
        var (l, p) = (localStatus.Ids, peerStatus.Ids);
        if (l.IsEmpty && p.IsEmpty)
        {
            return new(SyncOutcome.NoUsableSource, SyncKind.None, 10, "neither replica holds data");
        }

        if (l.IsEmpty)
        {
            return Target(SyncKind.Full, 20, "this replica is empty");
        }

        if (p.IsEmpty)
        {
            return Source(SyncKind.Full, 30, "the peer is empty");
        }

        if (l.Current == p.Current)
        {
            return SameDataSet(localStatus, peerStatus, localWinsTies);
        }

        if (p.Bitmap == l.Current)
        {
            return Target(SyncKind.Bitmap, 50, "the peer wrote alone since this replica's data set");
        }

        if (l.Bitmap == p.Current)
        {
            return Source(SyncKind.Bitmap, 60, "this replica wrote alone since the peer's data set");
        }

        if (p.InHistory(l.Current))
        {
            return Target(SyncKind.Full, 70, "the peer descends from this replica's data set but its bitmap does not reach back to it");
        }

        if (l.InHistory(p.Current))
        {
            return Source(SyncKind.Full, 80, "this replica descends from the peer's data set but its bitmap does not reach back to it");
        }

        if (l.Bitmap != 0 && l.Bitmap == p.Bitmap)
        {
            return new(SyncOutcome.SplitBrain, SyncKind.Bitmap, 90, "both replicas wrote alone since the same data set");
        }

        if (SharesAncestor(l, p))
        {
            return new(SyncOutcome.SplitBrain, SyncKind.Full, 100, "both replicas moved on from a common ancestor");
        }

        return new(SyncOutcome.Unrelated, SyncKind.None, 110, "the replicas share no data set");
    }

    /// <summary>
    /// Rules 40 to 43: the same data set. A replica that crashed while connected may have lost, with its
    /// page cache, writes both acknowledged (a power loss), so the one that stayed up sends: it holds every
    /// acknowledged write, and what either held beyond them was never acknowledged. Without a crash, a
    /// replica that still holds a bitmap id did not record the end of the resync it sent, and sends again.
    /// </summary>
    private static SyncDecision SameDataSet(ReplicaStatus local, ReplicaStatus peer, bool localWinsTies)
    {
        return (local.Crashed, peer.Crashed) switch
        {
            (false, true) => Source(SyncKind.Bitmap, 41, "same data set, but the peer crashed while connected and may have lost writes it had not made durable"),
            (true, false) => Target(SyncKind.Bitmap, 42, "same data set, but this replica crashed while connected and may have lost writes it had not made durable"),
            (true, true) => Tie(localWinsTies, "both crashed while connected"),
            _ => (local.Ids.Bitmap != 0, peer.Ids.Bitmap != 0) switch
            {
                (false, false) => new(SyncOutcome.NoSync, SyncKind.None, 40, "both replicas hold the same data set"),
                (true, false) => Source(SyncKind.Bitmap, 41, "same data set, but this replica did not record the end of the resync it sent"),
                (false, true) => Target(SyncKind.Bitmap, 42, "same data set, but the peer did not record the end of the resync it sent"),
                _ => Tie(localWinsTies, "neither recorded the end of a resync"),
            },
        };
    }

    private static SyncDecision Tie(bool localWinsTies, string why) => localWinsTies
        ? Source(SyncKind.Bitmap, 43, $"same data set, {why}; this replica wins the tie")
        : Target(SyncKind.Bitmap, 43, $"same data set, {why}; the peer wins the tie");

    private static bool SharesAncestor(GenerationIds l, GenerationIds p)
    {
        ReadOnlySpan<ulong> mine = [l.Bitmap, l.History0, l.History1];
        ReadOnlySpan<ulong> theirs = [p.Bitmap, p.History0, p.History1];
        foreach (var id in mine)
        {
            if (id != 0 && theirs.Contains(id))
            {
                return true;
            }
        }

        return false;
    }

    private static SyncDecision Source(SyncKind kind, int rule, string reason) => new(SyncOutcome.BecomeSource, kind, rule, reason);

    private static SyncDecision Target(SyncKind kind, int rule, string reason) => new(SyncOutcome.BecomeTarget, kind, rule, reason);
}

using Replicator.Core.Devices;
using Replicator.Core.Replication;

namespace Replicator.Core.Tests.Replication.Support;

/// <summary>
/// Two replicas of one volume, "A" and "B", paired in memory the way the node pairs them
/// (ReplicationManager.Pairing): both sides hold their writes (<see cref="ReplicatedVolume.BeginPairingAsync"/>),
/// decide with <see cref="SyncDecision.Decide"/>, exchange bitmaps, then attach a
/// <see cref="ReplicationSession"/> whose owner is the resync source, or the preferred node when
/// there is nothing to resync.
/// </summary>
internal sealed class ReplicaPair : IAsyncDisposable
{
    public const long DefaultSize = 4L << 20;
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private const int BitmapChunkBytes = 4 << 20;

    private ReplicaPair(long size, string preferred, bool emptyB)
    {
        var id = Guid.NewGuid();
        A = new ReplicaSide("A", "B", id, size);
        B = new ReplicaSide("B", "A", id, size, emptyB);
        Preferred = preferred;
    }

    public ReplicaSide A { get; }

    public ReplicaSide B { get; }

    /// <summary>The node that orders writes when neither replica is a resync source.</summary>
    public string Preferred { get; }

    /// <summary>The current connection, null while disconnected.</summary>
    public MemoryLink? Link { get; private set; }

    /// <param name="emptyB">B's replica holds no meaningful data yet (a replaced disk): the first pairing is a full sync.</param>
    public static ReplicaPair Create(long size = DefaultSize, string preferred = "A", bool emptyB = false) => new(size, preferred, emptyB);

    public static async Task<ReplicaPair> ConnectedAsync(long size = DefaultSize, string preferred = "A")
    {
        var pair = Create(size, preferred);
        await pair.ConnectAsync();
        return pair;
    }

    public ReplicaSide Other(ReplicaSide side) => side == A ? B : A;

    public ReplicaSide Side(string name) => name == "A" ? A : B;

    /// <summary>Pairs both sides and attaches them, the side that does not order writes first.</summary>
    /// <param name="afterCrash">The sessions compare before resending, as the node's are when a side stopped uncleanly while connected.</param>
    public async Task ConnectAsync(bool afterCrash = false)
    {
        var pending = await BeginPairingAsync(afterCrash);
        pending.Attach(pending.NonOwner);
        pending.Attach(pending.Owner);
    }

    /// <summary>The pairing up to the point where each side would attach: both hold their writes, bitmaps are exchanged.</summary>
    public async Task<PendingPairing> BeginPairingAsync(bool afterCrash = false)
    {
        if (Link is not null)
        {
            throw new InvalidOperationException("the pair is already connected; disconnect it first");
        }

        var pairingA = await A.Volume.BeginPairingAsync(CancellationToken.None).WaitAsync(Timeout);
        var pairingB = await B.Volume.BeginPairingAsync(CancellationToken.None).WaitAsync(Timeout);
        var statusA = A.Replica.Status;
        var statusB = B.Replica.Status;
        var decisionA = SyncDecision.Decide(statusA, statusB, localWinsTies: true);
        var decisionB = SyncDecision.Decide(statusB, statusA, localWinsTies: false);
        if (decisionA.Outcome is SyncOutcome.SplitBrain or SyncOutcome.Unrelated or SyncOutcome.NoUsableSource)
        {
            pairingA.Dispose();
            pairingB.Dispose();
            throw new InvalidOperationException($"the pairing is refused: {decisionA.Outcome} by rule {decisionA.Rule} ({decisionA.Reason})");
        }

        if (decisionA.Kind == SyncKind.Full)
        {
            A.Replica.MarkForFullSync(await AllocatedRangesAsync(A));
            B.Replica.MarkForFullSync(await AllocatedRangesAsync(B));
        }

        foreach (var chunk in A.Replica.EncodeBitmap(BitmapChunkBytes))
        {
            B.Replica.MergePeerBitmap(chunk);
        }

        foreach (var chunk in B.Replica.EncodeBitmap(BitmapChunkBytes))
        {
            A.Replica.MergePeerBitmap(chunk);
        }

        Link = new MemoryLink();
        return new PendingPairing(this, Link, afterCrash, new Dictionary<ReplicaSide, (ReplicatedVolume.Pairing, SyncDecision)>
        {
            [A] = (pairingA, decisionA),
            [B] = (pairingB, decisionB),
        });
    }

    /// <summary>The link fails (every request, waiting ones too), then each side detaches, as the node does when the connection ends.</summary>
    public async Task DisconnectAsync()
    {
        Link?.Cut();
        foreach (var side in new[] { A, B })
        {
            if (side.Session is { } session)
            {
                await side.Volume.DetachAsync(session).WaitAsync(Timeout);
                side.Session = null;
            }
        }

        Link?.Dispose();
        Link = null;
    }

    /// <summary>Waits until the owner has completed <paramref name="count"/> resyncs and both replicas are up to date.</summary>
    public async Task WaitForResyncAsync(ReplicaSide source, int count = 1)
    {
        var target = Other(source);
        await Eventually.TrueAsync(
            () => source.Volume.Resync.Progress.Completed >= count && source.Session?.Role == SyncRole.None && target.Replica.IsUpToDate,
            $"{source.Name} completes resync number {count} to {target.Name}");
    }

    public async ValueTask DisposeAsync()
    {
        await DisconnectAsync();
        A.Dispose();
        B.Dispose();
    }

    private static async Task<List<(long Offset, long Length)>> AllocatedRangesAsync(ReplicaSide side)
    {
        var ranges = new List<(long, long)>();
        var position = 0L;
        foreach (var extent in await side.Thin.GetAllocationAsync(0, side.Thin.Size))
        {
            if ((extent.State & AllocationState.Hole) == 0)
            {
                ranges.Add((position, extent.Length));
            }

            position += extent.Length;
        }

        return ranges;
    }

    /// <summary>Both sides hold their writes; <see cref="Attach"/> lets each go, as the node's Start does.</summary>
    internal sealed class PendingPairing(ReplicaPair pair, MemoryLink link, bool afterCrash, Dictionary<ReplicaSide, (ReplicatedVolume.Pairing Pairing, SyncDecision Decision)> sides)
    {
        public ReplicaSide Owner => IsOwner(pair.A) ? pair.A : pair.B;

        public ReplicaSide NonOwner => pair.Other(Owner);

        public void Attach(ReplicaSide side)
        {
            var (pairing, decision) = sides[side];
            var other = pair.Other(side);
            var owner = IsOwner(side);
            var role = side.Replica.OutOfSyncBytes == 0 && decision.Outcome == SyncOutcome.NoSync
                ? SyncRole.None
                : owner ? SyncRole.Source : SyncRole.Target;
            if (role == SyncRole.Target)
            {
                side.Replica.SetDiskState(ReplicaDiskState.Inconsistent);
            }

            var session = new ReplicationSession(new MemoryPeer(other, link), other.Name, owner, role, link.LeaseOf(side.Name)) { CompareFirst = afterCrash };
            side.Session = session;
            side.Volume.AttachAsync(pairing, session, other.NodeId).GetAwaiter().GetResult();
        }

        private bool IsOwner(ReplicaSide side) => sides[side].Decision.Outcome switch
        {
            SyncOutcome.BecomeSource => true,
            SyncOutcome.BecomeTarget => false,
            _ => pair.Preferred == side.Name,
        };
    }
}

/// <summary>Bounded waits for states that raise no event.</summary>
internal static class Eventually
{
    public static async Task TrueAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + ReplicaPair.Timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"waited {ReplicaPair.Timeout.TotalSeconds} s for: {what}");
            }

            await Task.Delay(5);
        }
    }

    /// <summary>Asserts that <paramref name="condition"/> stays true for <paramref name="milliseconds"/> (a thing that must not happen has no event to await).</summary>
    public static async Task HoldsAsync(Func<bool> condition, string what, int milliseconds = 150)
    {
        var until = DateTime.UtcNow.AddMilliseconds(milliseconds);
        while (DateTime.UtcNow < until)
        {
            Assert.True(condition(), $"expected to hold: {what}");
            await Task.Delay(5);
        }

        Assert.True(condition(), $"expected to hold: {what}");
    }

    /// <summary>Asserts that <paramref name="task"/> is still running after <paramref name="wait"/> (a thing that must not happen has no event to await).</summary>
    public static async Task StaysPendingAsync(Task task, string what, int milliseconds = 150)
    {
        await Task.WhenAny(task, Task.Delay(milliseconds));
        Assert.False(task.IsCompleted, $"{what} completed too early");
    }
}

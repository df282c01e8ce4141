using Replicator.Core.Devices;
using Replicator.Core.Replication;

namespace Replicator.Core.Tests.Replication.Support;

/// <summary>
/// Two replicas of one volume, "A" and "B", paired in memory the way the node pairs them: both sides hold
/// their writes (<see cref="ReplicatedVolume.BeginPairingAsync"/>), feed the pairing machine the other's
/// facts (<see cref="ReplicatedVolume.ConnectAsync"/>, which decides and marks), exchange bitmaps, then start
/// (<see cref="ReplicatedVolume.StartAsync"/>, which attaches the session the plan calls for). No decision is
/// made here: the machine makes them, as on a node. A side whose disk is detached or attached again asks for
/// a new pairing (<see cref="ReplicatedVolume.RepairRequested"/>), which the pair makes on the same link.
/// </summary>
internal sealed class ReplicaPair : IAsyncDisposable
{
    public const long DefaultSize = 4L << 20;
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private const int BitmapChunkBytes = 4 << 20;

    private readonly Lock _repairLock = new();
    private Task _repairs = Task.CompletedTask;

    private ReplicaPair(long size, string preferred, bool emptyB)
    {
        var id = Guid.NewGuid();
        A = new ReplicaSide("A", "B", id, size);
        B = new ReplicaSide("B", "A", id, size, emptyB);
        Preferred = preferred;
        A.Volume.RepairRequested = (_, _) => RepairInBackground();
        B.Volume.RepairRequested = (_, _) => RepairInBackground();
    }

    public ReplicaSide A { get; }

    public ReplicaSide B { get; }

    /// <summary>The node that orders writes when neither replica is a resync source.</summary>
    public string Preferred { get; }

    /// <summary>The current connection, null while disconnected.</summary>
    public MemoryLink? Link { get; private set; }

    /// <summary>New pairings on the current link made because a side asked (its disk was detached or attached again).</summary>
    public int Repairs { get; private set; }

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

    /// <summary>Pairs both sides on a new link and attaches them, the side that does not order writes first.</summary>
    public async Task ConnectAsync()
    {
        var pending = await BeginPairingAsync();
        pending.Attach(pending.NonOwner);
        pending.Attach(pending.Owner);
    }

    /// <summary>The pairing on a new link up to the point where each side would start: both hold their writes, bitmaps are exchanged.</summary>
    public async Task<PendingPairing> BeginPairingAsync()
    {
        if (Link is not null)
        {
            throw new InvalidOperationException("the pair is already connected; disconnect it first");
        }

        A.Volume.OnLinkUp();
        B.Volume.OnLinkUp();
        Link = new MemoryLink();
        try
        {
            return await PairAsync(Link);
        }
        catch (InvalidOperationException)
        {
            Link.Dispose();
            Link = null;
            throw;
        }
    }

    /// <summary>The link fails (every request, waiting ones too), then each side detaches, as the node does when the connection ends.</summary>
    public async Task DisconnectAsync()
    {
        Link?.Cut();
        Task repairs;
        lock (_repairLock)
        {
            repairs = _repairs;
        }

        await repairs.WaitAsync(Timeout);
        foreach (var side in new[] { A, B })
        {
            await side.Volume.DisconnectAsync().WaitAsync(Timeout);
        }

        Link?.Dispose();
        Link = null;
    }

    /// <summary>Waits until every pairing a side asked for has been made.</summary>
    public async Task WaitForRepairsAsync()
    {
        Task repairs;
        lock (_repairLock)
        {
            repairs = _repairs;
        }

        await repairs.WaitAsync(Timeout);
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

    /// <summary>The node's pairing of the volume on <paramref name="link"/>, up to the start.</summary>
    private async Task<PendingPairing> PairAsync(MemoryLink link)
    {
        var holdA = await A.Volume.BeginPairingAsync(CancellationToken.None).WaitAsync(Timeout);
        var holdB = await B.Volume.BeginPairingAsync(CancellationToken.None).WaitAsync(Timeout);
        var statusA = A.Replica.Status;
        var statusB = B.Replica.Status;
        var planA = await A.Volume.ConnectAsync(holdA, statusA, new PeerFacts(B.NodeId, B.Name, statusB, LocalWinsTies: true, LocalPreferred: Preferred == A.Name));
        var planB = await B.Volume.ConnectAsync(holdB, statusB, new PeerFacts(A.NodeId, A.Name, statusA, LocalWinsTies: false, LocalPreferred: Preferred == B.Name));
        if (planA.Refused || planB.Refused)
        {
            throw new InvalidOperationException($"the pairing is refused: {planA.Decision.Outcome} by rule {planA.Decision.Rule} ({planA.Decision.Reason})");
        }

        foreach (var chunk in A.Replica.EncodeBitmap(BitmapChunkBytes))
        {
            B.Replica.MergePeerBitmap(chunk);
        }

        foreach (var chunk in B.Replica.EncodeBitmap(BitmapChunkBytes))
        {
            A.Replica.MergePeerBitmap(chunk);
        }

        return new PendingPairing(this, link, new Dictionary<ReplicaSide, ReplicatedVolume.PairingHold> { [A] = holdA, [B] = holdB });
    }

    /// <summary>A side's disk was detached or attached: pair again on the same link, one pairing after the other, as the dialing node does.</summary>
    private void RepairInBackground()
    {
        lock (_repairLock)
        {
            _repairs = _repairs.ContinueWith(async _ =>
            {
                if (Link is not { IsCut: false } link)
                {
                    return;
                }

                PendingPairing pending;
                try
                {
                    pending = await PairAsync(link);
                }
                catch (InvalidOperationException)
                {
                    // Refused (no usable source): both sides say why in their pairing state, as a node's status would.
                    return;
                }

                pending.Attach(pending.NonOwner);
                pending.Attach(pending.Owner);
                Repairs++;
            }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default).Unwrap();
        }
    }

    /// <summary>Both sides hold their writes; <see cref="Attach"/> starts each, as the node's VolumeStart does.</summary>
    internal sealed class PendingPairing(ReplicaPair pair, MemoryLink link, Dictionary<ReplicaSide, ReplicatedVolume.PairingHold> holds)
    {
        /// <summary>The side the machine made owner (decided at connect; both sides agree).</summary>
        public ReplicaSide Owner => WillOwn(pair.A) ? pair.A : pair.B;

        public ReplicaSide NonOwner => pair.Other(Owner);

        public void Attach(ReplicaSide side)
        {
            var other = pair.Other(side);
            side.Volume.StartAsync(holds[side], new MemoryPeer(other, link), other.Name, link.LeaseOf(side.Name)).WaitAsync(Timeout).GetAwaiter().GetResult();
        }

        private static bool WillOwn(ReplicaSide side) => side.Volume.PairingState.PlanMakesLocalOwner;
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

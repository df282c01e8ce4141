using System.Buffers;
using Microsoft.Extensions.Logging;
using Replicator.Core.Devices;

namespace Replicator.Core.Replication;

/// <summary>The write path: ordered on the owner, forwarded from the other node, alone when the peer is away.</summary>
internal sealed partial class ReplicatedVolume
{
    private async ValueTask ExecuteAsync(WriteOp op, CancellationToken cancellationToken)
    {
        CheckRange(op.Offset, op.Length);
        NoteForeground();
        op = WithChecksums(op, out var rented);
        try
        {
            await ExecuteWithChecksumsAsync(op, cancellationToken);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private async ValueTask ExecuteWithChecksumsAsync(WriteOp op, CancellationToken cancellationToken)
    {
        if (!HasPeer)
        {
            if (!DiskUsable)
            {
                throw Detached("write");
            }

            // Overlapping writes never run at once on a replica (see ThinVolume): alone, the order is taken here. The
            // activity log names where a crash may leave a write not durable (or its checksums not written back), so
            // the check at the next start covers it.
            using var order = await _order.AcquireAsync(op.Offset, op.Length, cancellationToken);
            try
            {
                await WriteWithoutPeerAsync(op, cancellationToken);
            }
            catch (BlockDeviceException e) when (e.Error == StorageError.Io && IsDiskFault(e) && DiskUsable)
            {
                // Without a peer a full pool only fails the write (nothing is lost); an I/O error fails the disk.
                OnLocalFault(e);
                throw;
            }

            return;
        }

        while (true)
        {
            var session = Session;
            if (session is null)
            {
                if (!DiskUsable)
                {
                    throw new BlockDeviceException(StorageError.Io, $"volume '{Name}': this node's disk is detached and {PeerName} is not connected; no replica can take the write here");
                }

                if (await WriteAloneAsync(op, cancellationToken))
                {
                    return;
                }

                continue;
            }

            if (session.LocalIsOwner)
            {
                switch (await WriteOrderedAsync(session, op, cancellationToken))
                {
                    case Ordered.Done:
                        return;
                    case Ordered.LocalDiskDetached:
                        // The disk failed under this owner: the pair is paired again with the peer as owner,
                        // and the change goes through it (the peer may have it already; applying it again is harmless).
                        await WaitSessionReplacedAsync(session, cancellationToken);
                        break;
                }

                continue;
            }

            try
            {
                await session.Peer.ForwardAsync(op, cancellationToken);
                return;
            }
            catch (NotOwnerException)
            {
                // The owner moved (the pair is pairing the volume again): wait for the new pairing, then resend.
                await WaitForPairingAsync(cancellationToken);
                await Task.Delay(10, cancellationToken);
            }
            catch (PeerUnavailableException)
            {
                // The owner may or may not have applied it; once the pairing is gone this node
                // applies it alone (if it may) and the bitmap makes both sides agree later.
                await WaitDetachedAsync(session, cancellationToken);
            }
            catch (PeerFailedException e)
            {
                throw new BlockDeviceException(e.Error, e.Message, e);
            }
        }
    }

    /// <summary>A change on a node without a peer, in the activity log like any other (or, too long for it, flushed before it is acknowledged).</summary>
    private async ValueTask WriteWithoutPeerAsync(WriteOp op, CancellationToken cancellationToken)
    {
        if (op.Length > Replica.ActivityLogReach)
        {
            await ApplyLocalAsync(op, cancellationToken);
            await FlushBeforeAcknowledgingAsync(cancellationToken);
            return;
        }

        var activity = await Replica.BeginActivityAsync(op.Offset, op.Length, cancellationToken);
        try
        {
            await ApplyLocalAsync(op, cancellationToken);
        }
        finally
        {
            Replica.EndActivity(activity);
        }
    }

    /// <summary>
    /// On the owner: orders the change, applies it on both replicas in parallel, returns when both have it.
    /// <see cref="Ordered.SessionChanged"/>, with nothing done, when the session changed while the change waited
    /// for its turn (the volume was paired again, perhaps with the other node as owner);
    /// <see cref="Ordered.LocalDiskDetached"/> when this replica's disk is detached (now or before) and the peer
    /// must order it instead: the caller starts over.
    /// </summary>
    internal async ValueTask<Ordered> WriteOrderedAsync(ReplicationSession session, WriteOp op, CancellationToken cancellationToken)
    {
        using var order = await _order.AcquireAsync(op.Offset, op.Length, cancellationToken);
        if (Session != session)
        {
            return Ordered.SessionChanged;
        }

        if (!DiskUsable)
        {
            return Ordered.LocalDiskDetached;
        }

        if (!session.PeerHasDisk)
        {
            await WriteForDisklessPeerAsync(op, cancellationToken);
            return Ordered.Done;
        }

        ReplicaStore.Activity activity;
        try
        {
            activity = await Replica.BeginActivityAsync(op.Offset, op.Length, cancellationToken);
        }
        catch (BlockDeviceException e) when (IsDiskFault(e))
        {
            OnLocalFault(e);
            return Ordered.LocalDiskDetached;
        }

        try
        {
            // Once ordered, the change runs to its end on both replicas even if the client gives
            // up: releasing the range before the peer answered would let a newer change to it
            // reach the peer first, and leave a change applied here unmarked.
            var peer = ReplicateToPeerAsync(session, op, CancellationToken.None);
            BlockDeviceException? localFailure = null;
            try
            {
                await ApplyLocalAsync(op, CancellationToken.None);
            }
            catch (BlockDeviceException e)
            {
                localFailure = e;
            }

            var (peerOutcome, peerFailure) = await peer;
            if (localFailure is not null)
            {
                return FailedHere(op, localFailure, peerOutcome);
            }

            if (peerOutcome != PeerOutcome.Applied)
            {
                if (peerFailure is not null)
                {
                    OnPeerDiskFault(peerFailure);
                }

                // A peer that refused the change stopped serving the range itself; one that is
                // unreachable may still read it under the lease this node granted.
                await AcknowledgeWithoutPeerAsync(op, peerOutcome == PeerOutcome.Unavailable ? session.Lease : null, cancellationToken);
                Resync.Kick();
            }

            return Ordered.Done;
        }
        finally
        {
            Replica.EndActivity(activity);
        }
    }

    /// <summary>
    /// With no peer: the change goes to the bitmap first, then to the local replica. False when a
    /// pairing attached the peer while the change waited for it: the change goes through the peer.
    /// </summary>
    private async ValueTask<bool> WriteAloneAsync(WriteOp op, CancellationToken cancellationToken)
    {
        await WaitForPairingAsync(cancellationToken);
        if (Session is not null)
        {
            return false;
        }

        if (!Replica.IsUpToDate)
        {
            throw new BlockDeviceException(StorageError.NotPermitted,
                $"volume '{Name}' on this node is not up to date (disk {Replica.DiskState}) and its peer {PeerName} is not connected; write through the peer");
        }

        var alone = await ClaimWritingAloneAsync(Volatile.Read(ref _lastLease), cancellationToken);
        using var order = await _order.AcquireAsync(op.Offset, op.Length, cancellationToken);
        if (Session is not null)
        {
            // A pairing took the whole volume while this change waited for its range, and attached.
            return false;
        }

        try
        {
            var activity = await Replica.BeginActivityAsync(op.Offset, op.Length, cancellationToken);
            try
            {
                Replica.MarkOutOfSync(op.Offset, op.Length, alone);
                await ApplyLocalAsync(op, cancellationToken);
            }
            finally
            {
                Replica.EndActivity(activity);
            }
        }
        catch (BlockDeviceException e) when (IsDiskFault(e))
        {
            OnLocalFault(e);
            throw;
        }

        return true;
    }

    /// <summary>Flushes this replica for a change the activity log does not cover; a failed flush fails the disk, even with ENOSPC.</summary>
    private async ValueTask FlushBeforeAcknowledgingAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _local.FlushAsync(cancellationToken);
        }
        catch (BlockDeviceException e) when (IsDiskFault(e))
        {
            OnLocalFault(e, flushing: true);
            throw;
        }
    }

    /// <summary>
    /// The peer did not confirm a change this replica applied: record it before acknowledging.
    /// Acknowledging it makes this replica newer than the peer (its generation moves on); when the
    /// quorum forbids writing alone, the change is only recorded as out of sync and the client gets
    /// an error, so the peer's side wins that region on reconnect.
    /// </summary>
    private async ValueTask AcknowledgeWithoutPeerAsync(WriteOp op, PeerReadLease? peerMayRead, CancellationToken cancellationToken)
    {
        GenerationIds alone;
        try
        {
            alone = await ClaimWritingAloneAsync(peerMayRead, cancellationToken);
        }
        catch (Exception e) when (e is BlockDeviceException or OperationCanceledException)
        {
            Replica.MarkOutOfSync(op.Offset, op.Length);
            throw;
        }

        Replica.MarkOutOfSync(op.Offset, op.Length, alone);
    }

    /// <summary>
    /// Waits until the peer can no longer serve reads under a lease this node granted on
    /// <paramref name="peerMayRead"/>'s connection, then asks the quorum whether this replica may
    /// acknowledge changes its peer lacks, naming the generation it will then hold, so a witness
    /// knows which data set the writer has before any such change is acknowledged.
    /// </summary>
    private async ValueTask<GenerationIds> ClaimWritingAloneAsync(PeerReadLease? peerMayRead, CancellationToken cancellationToken)
    {
        if (peerMayRead is not null)
        {
            try
            {
                await peerMayRead.WaitGrantsExpiredAsync(DetachWait, cancellationToken);
            }
            catch (TimeoutException e)
            {
                throw new BlockDeviceException(StorageError.Io, $"volume '{Name}': the link to {PeerName} failed but did not close within {DetachWait.TotalSeconds} s", e);
            }
        }

        var alone = Replica.GenerationForWritingAlone();
        await _quorum.EnsureMayWriteAloneAsync(this, alone, cancellationToken);
        return alone;
    }

    /// <summary>Replicates to the peer, and says whether the peer confirmed, could not be reached, or refused (its disk failed, or is full).</summary>
    private async ValueTask<(PeerOutcome Outcome, PeerFailedException? Refusal)> ReplicateToPeerAsync(ReplicationSession session, WriteOp op, CancellationToken cancellationToken)
    {
        try
        {
            await session.Peer.ReplicateAsync(op, cancellationToken);
            return (PeerOutcome.Applied, null);
        }
        catch (PeerUnavailableException e)
        {
            LogPeerMissedWrite(Name, PeerName, op.ToString(), e.Message);
            return (PeerOutcome.Unavailable, null);
        }
        catch (PeerFailedException e)
        {
            LogPeerRefusedWrite(Name, PeerName, op.ToString(), e.Message);
            return (PeerOutcome.Refused, e);
        }
    }

    private async Task WaitDetachedAsync(ReplicationSession session, CancellationToken cancellationToken)
    {
        try
        {
            await session.Ended.WaitAsync(DetachWait, cancellationToken);
        }
        catch (TimeoutException)
        {
            throw new BlockDeviceException(StorageError.Io, $"volume '{Name}': the link to {PeerName} failed but did not close within {DetachWait.TotalSeconds} s");
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Volume}: peer {Peer} did not confirm {Op} ({Reason}); marked out of sync")]
    private partial void LogPeerMissedWrite(string volume, string peer, string op, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Volume {Volume}: peer {Peer} failed {Op}: {Reason}; marked out of sync")]
    private partial void LogPeerRefusedWrite(string volume, string peer, string op, string reason);
}

/// <summary>What became of a change the owner ordered.</summary>
internal enum Ordered
{
    Done,

    /// <summary>The session changed while the change waited: nothing was done.</summary>
    SessionChanged,

    /// <summary>This replica's disk is detached: the change must go through the peer, once it orders the writes.</summary>
    LocalDiskDetached,
}

/// <summary>What became of a change sent to the peer.</summary>
internal enum PeerOutcome
{
    Applied,
    /// <summary>The link went down: the peer may or may not have it.</summary>
    Unavailable,
    /// <summary>The peer answered that it could not apply it; it no longer counts that range as its own.</summary>
    Refused,
}

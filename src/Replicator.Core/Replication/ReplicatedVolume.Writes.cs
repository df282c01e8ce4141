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
            // Overlapping writes never run at once on a replica (see ThinVolume): alone, the order is taken here. The
            // activity log names where a crash may leave a write not durable (or its checksums not written back), so
            // the check at the next start covers it.
            using var order = await _order.AcquireAsync(op.Offset, op.Length, cancellationToken);
            if (op.Length > Replica.ActivityLogReach)
            {
                // Too long for the log (a trim or zero of gigabytes): made durable before it is acknowledged instead.
                await ApplyLocalAsync(op, cancellationToken);
                await _local.FlushAsync(cancellationToken);
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

            return;
        }

        while (true)
        {
            var session = Session;
            if (session is null)
            {
                if (await WriteAloneAsync(op, cancellationToken))
                {
                    return;
                }

                continue;
            }

            if (session.LocalIsOwner)
            {
                if (await WriteOrderedAsync(session, op, cancellationToken))
                {
                    return;
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

    /// <summary>
    /// On the owner: orders the change, applies it on both replicas in parallel, returns when both
    /// have it. False, with nothing done, when the session changed while the change waited for its
    /// turn (the volume was paired again, perhaps with the other node as owner): the caller starts over.
    /// </summary>
    internal async ValueTask<bool> WriteOrderedAsync(ReplicationSession session, WriteOp op, CancellationToken cancellationToken)
    {
        using var order = await _order.AcquireAsync(op.Offset, op.Length, cancellationToken);
        if (Session != session)
        {
            return false;
        }

        var activity = await Replica.BeginActivityAsync(op.Offset, op.Length, cancellationToken);
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

            var peerOutcome = await peer;
            if (localFailure is not null)
            {
                if (peerOutcome == PeerOutcome.Applied)
                {
                    // The replicas now differ where the change failed here; the next resync from
                    // this node (the owner) makes the peer match this replica again.
                    Replica.MarkOutOfSync(op.Offset, op.Length);
                    Resync.Kick();
                }

                throw localFailure;
            }

            if (peerOutcome != PeerOutcome.Applied)
            {
                // A peer that refused the change stopped serving the range itself; one that is
                // unreachable may still read it under the lease this node granted.
                await AcknowledgeWithoutPeerAsync(op, peerOutcome == PeerOutcome.Unavailable ? session.Lease : null, cancellationToken);
                Resync.Kick();
            }

            return true;
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

        return true;
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

    /// <summary>Replicates to the peer, and says whether the peer confirmed, could not be reached, or refused (its disk failed).</summary>
    private async ValueTask<PeerOutcome> ReplicateToPeerAsync(ReplicationSession session, WriteOp op, CancellationToken cancellationToken)
    {
        try
        {
            await session.Peer.ReplicateAsync(op, cancellationToken);
            return PeerOutcome.Applied;
        }
        catch (PeerUnavailableException e)
        {
            LogPeerMissedWrite(Name, PeerName, op.ToString(), e.Message);
            return PeerOutcome.Unavailable;
        }
        catch (PeerFailedException e)
        {
            LogPeerRefusedWrite(Name, PeerName, op.ToString(), e.Message);
            return PeerOutcome.Refused;
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

/// <summary>What became of a change sent to the peer.</summary>
internal enum PeerOutcome
{
    Applied,
    /// <summary>The link went down: the peer may or may not have it.</summary>
    Unavailable,
    /// <summary>The peer answered that it could not apply it; it no longer counts that range as its own.</summary>
    Refused,
}

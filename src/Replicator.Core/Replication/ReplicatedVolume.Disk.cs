using Microsoft.Extensions.Logging;
using Replicator.Core.Devices;

namespace Replicator.Core.Replication;

/// <summary>
/// A failed or full disk (DRBD's <c>on-io-error detach</c>). An I/O error on this replica's pool or its
/// metadata files detaches the disk: the replica stops serving reads and taking writes, the node keeps
/// its clients by sending their requests to the peer, and the peer, which then orders every write,
/// marks what this replica misses. A full pool does the same, except that nothing it held is lost and
/// the node attaches it again by itself once there is room; after a failure an admin attaches the
/// repaired disk, and the resync compares every region, since a failed fsync may have dropped writes
/// that nothing marks.
/// </summary>
/// <remarks>
/// The state lives in the pairing machine (<see cref="PairingState.Disk"/>), the record of it in the
/// replica metadata (<see cref="ReplicaDiskState.Diskless"/> with <see cref="ReplicaFlags.DiskFailed"/> or
/// <see cref="ReplicaFlags.PoolFull"/>), written if the metadata can still be written.
/// </remarks>
internal sealed partial class ReplicatedVolume
{
    /// <summary>Whether this replica's disk serves I/O (false: it failed or its pool is full, and is detached).</summary>
    public bool DiskUsable => Volatile.Read(ref _pairingState).Disk == DiskAttachment.Attached;

    /// <summary>Whether this node acknowledges writes its peer does not get: no session, or a peer without a disk.</summary>
    public bool WritesWithoutPeer => Session is not { PeerHasDisk: true };

    /// <summary>
    /// An error that means the disk below this replica failed (EIO) or is full (ENOSPC). A block that fails its
    /// checksum is not one: it is healed from the peer or fails its request, and the disk stays attached.
    /// </summary>
    internal static bool IsDiskFault(BlockDeviceException e) => e is not CorruptBlockException && e.Error is StorageError.Io or StorageError.NoSpace;

    /// <summary>
    /// Attaches the disk again (an admin repaired it, or the full pool has room): its files are written
    /// anew, it counts as inconsistent, and the volume pairs again so the peer resyncs it. Throws a
    /// <see cref="BlockDeviceException"/> (and stays detached) when the disk still fails, and a
    /// <see cref="PairingRejectedException"/> when it is attached already.
    /// </summary>
    public void AttachDisk()
    {
        if (!DiskUsable)
        {
            // The pool must take an fsync again before the replica counts on it.
            try
            {
                _local.FlushAsync().AsTask().GetAwaiter().GetResult();
            }
            catch (BlockDeviceException e) when (IsDiskFault(e))
            {
                OnLocalFault(e, flushing: true);
                throw;
            }
        }

        var step = Apply(new DiskAttached());
        try
        {
            ExecuteAsync(step, null, null).GetAwaiter().GetResult();
        }
        catch (BlockDeviceException e) when (IsDiskFault(e))
        {
            OnLocalFault(e);
            throw;
        }
    }

    /// <summary>
    /// This replica's disk failed (or filled up) under an I/O: detach it, and have the volume paired again if it
    /// is paired. On a node without a peer nothing can serve instead, so the volume fails every request until an
    /// admin attaches the disk again; what matters is that no flush after a failed one claims durability.
    /// </summary>
    /// <param name="flushing">The fault came from an fsync: even ENOSPC there may have dropped written pages, so the disk counts as failed, not full.</param>
    internal void OnLocalFault(BlockDeviceException e, bool flushing = false) =>
        ExecuteAsync(Apply(new LocalDiskFailed(e.Message, Full: e.Error == StorageError.NoSpace && !flushing)), null, null).GetAwaiter().GetResult();

    /// <summary>
    /// The peer's disk failed under a write or flush: record it before this node acknowledges anything the peer lacks.
    /// A full pool refusing a write loses nothing; a flush that failed at all may have dropped written pages.
    /// </summary>
    private void OnPeerDiskFault(PeerFailedException e, bool flushing = false)
    {
        if (e.Error == StorageError.Io || (flushing && e.Error == StorageError.NoSpace))
        {
            LogPeerDiskFailed(Name, PeerName, e.Message);
            ExecuteAsync(Apply(new PeerDiskFailed(Replica.Status)), null, null).GetAwaiter().GetResult();
        }
    }

    /// <summary>
    /// The change failed on this replica. A failed or full disk is detached; if the peer has the change,
    /// the caller sends it again through the new owner (first marked here, while this replica's files may
    /// still be written, so the mark travels with the next bitmap exchange). Any other failure, or one
    /// the peer shares, goes to the client.
    /// </summary>
    private Ordered FailedHere(WriteOp op, BlockDeviceException failure, PeerOutcome peerOutcome)
    {
        if (IsDiskFault(failure))
        {
            try
            {
                Replica.MarkOutOfSync(op.Offset, op.Length);
            }
            catch (BlockDeviceException)
            {
                // The files failed too: the peer's flags and identifiers cover the range (see ReplicaStore.Detach).
            }

            OnLocalFault(failure);
            if (peerOutcome == PeerOutcome.Applied)
            {
                return Ordered.LocalDiskDetached;
            }

            throw failure;
        }

        if (peerOutcome == PeerOutcome.Applied)
        {
            // The replicas now differ where the change failed here; the next resync from
            // this node (the owner) makes the peer match this replica again.
            Replica.MarkOutOfSync(op.Offset, op.Length);
            Resync.Kick();
        }

        throw failure;
    }

    /// <summary>
    /// The peer's disk is detached: this owner applies the change alone, marked first (durably) and under the
    /// witness rule, like a change made without a peer; the peer reads it from here.
    /// </summary>
    private async ValueTask WriteForDisklessPeerAsync(WriteOp op, CancellationToken cancellationToken)
    {
        var alone = await ClaimWritingAloneAsync(null, cancellationToken);
        var activity = await Replica.BeginActivityAsync(op.Offset, op.Length, cancellationToken);
        try
        {
            Replica.MarkOutOfSync(op.Offset, op.Length, alone);
            await op.ApplyAsync(_local, cancellationToken);
        }
        catch (BlockDeviceException e) when (IsDiskFault(e))
        {
            // Neither replica has a disk now: nothing can take the change.
            OnLocalFault(e);
            throw;
        }
        finally
        {
            Replica.EndActivity(activity);
        }
    }

    /// <summary>Waits for the pairing that replaces <paramref name="session"/> (or ends it), bounded.</summary>
    private async Task WaitSessionReplacedAsync(ReplicationSession session, CancellationToken cancellationToken)
    {
        try
        {
            await session.Ended.WaitAsync(DetachWait, cancellationToken);
        }
        catch (TimeoutException)
        {
            throw new BlockDeviceException(StorageError.Io, $"volume '{Name}': this node's disk is detached and the pairing that moves its writes to {PeerName} did not come within {DetachWait.TotalSeconds} s");
        }
    }

    /// <summary>The error for a request that needs this replica's disk while it is detached.</summary>
    private BlockDeviceException Detached(string doing)
    {
        var full = Volatile.Read(ref _pairingState).Disk == DiskAttachment.Full;
        return new BlockDeviceException(full ? StorageError.NoSpace : StorageError.Io,
            $"volume '{Name}': this node's disk is detached ({(full ? "its pool is full" : "it failed")}); cannot {doing} it here");
    }

    /// <summary>
    /// Reads through the peer because this replica's disk is detached: only where the peer holds every
    /// acknowledged write (it orders the writes, or this owner marks none of the range as missing there).
    /// </summary>
    private ValueTask ReadThroughPeerAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        if (!HasPeer)
        {
            throw Detached("read");
        }

        var session = Session;
        if (session is not { PeerHasDisk: true })
        {
            throw new BlockDeviceException(StorageError.Io,
                $"volume '{Name}': this node's disk is detached and {PeerName} {(session is null ? "is not connected" : "has no disk either")}; no copy of the data can be read");
        }

        if (session.LocalIsOwner && Replica.IsMarked(offset, destination.Length))
        {
            throw new BlockDeviceException(StorageError.Io,
                $"volume '{Name}': this node's disk is detached and {PeerName} lacks [{offset}, +{destination.Length}) until a resync it can no longer get");
        }

        return ReadFromPeerAsync(offset, destination, cancellationToken);
    }

    /// <summary>
    /// Reads this replica, every block checked (see <see cref="ReadCheckedAsync"/>); an I/O error detaches its disk,
    /// and the read goes to the peer. A block that fails its checksum is no disk fault: it is healed or fails the read.
    /// </summary>
    private async ValueTask ReadLocalAsync(long offset, Memory<byte> destination, IntegrityPath path, CancellationToken cancellationToken)
    {
        try
        {
            await ReadCheckedAsync(offset, destination, path, cancellationToken);
            return;
        }
        catch (BlockDeviceException e) when (IsDiskFault(e))
        {
            OnLocalFault(e);
        }

        await ReadThroughPeerAsync(offset, destination, cancellationToken);
    }

    /// <summary>
    /// A flush is durable when the side that holds every acknowledged write made it durable: this replica
    /// while up to date, the peer while it orders the writes or this owner marks nothing it lacks. A side
    /// whose flush failed is detached (this one) or recorded as failed (the peer); if neither side that
    /// holds every write could flush, the client gets EIO.
    /// </summary>
    private async ValueTask FlushBothAsync(CancellationToken cancellationToken)
    {
        var session = Session;
        var peer = session is { PeerHasDisk: true } ? FlushPeerAsync(session, cancellationToken) : null;
        var localUsed = DiskUsable;
        BlockDeviceException? localFailure = null;
        if (localUsed)
        {
            try
            {
                await Replica.FlushAsync(cancellationToken);
            }
            catch (BlockDeviceException e) when (IsDiskFault(e))
            {
                localFailure = e;
                OnLocalFault(e, flushing: true);
            }
        }

        var peerFailure = peer is null ? null : await peer;
        if (peerFailure is PeerFailedException failed)
        {
            OnPeerDiskFault(failed, flushing: true);
        }

        var localDurable = localUsed && localFailure is null && Replica.IsUpToDate;
        var peerDurable = peer is not null && peerFailure is null && (!session!.LocalIsOwner || Replica.OutOfSyncBytes == 0);
        if (localDurable || peerDurable)
        {
            if (localFailure is not null || peerFailure is not null)
            {
                LogFlushedOnOneSide(Name, localDurable ? "this node" : PeerName, (localFailure ?? peerFailure)!.Message);
            }

            return;
        }

        throw new BlockDeviceException(StorageError.Io,
            $"volume '{Name}': the flush is durable on no copy that holds every write ({Describe(localUsed, localFailure, "this node")}; {Describe(peer is not null, peerFailure, PeerName)})",
            localFailure ?? peerFailure);
    }

    private static async Task<Exception?> FlushPeerAsync(ReplicationSession session, CancellationToken cancellationToken)
    {
        try
        {
            await session.Peer.FlushAsync(cancellationToken);
            return null;
        }
        catch (Exception e) when (e is PeerUnavailableException or PeerFailedException)
        {
            return e;
        }
    }

    private static string Describe(bool used, Exception? failure, string side) =>
        !used ? $"{side}: no disk in use" : failure is null ? $"{side}: flushed, but lacks writes" : $"{side}: {failure.Message}";

    [LoggerMessage(Level = LogLevel.Error, Message = "Volume {Volume}: peer {Peer} reports its disk failed ({Reason}); the next resync to it compares every region")]
    private partial void LogPeerDiskFailed(string volume, string peer, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Volume}: a flush is durable on {Side} only ({Reason}); the pair is degraded")]
    private partial void LogFlushedOnOneSide(string volume, string side, string reason);
}

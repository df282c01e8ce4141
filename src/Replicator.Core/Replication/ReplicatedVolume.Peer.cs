using System.Buffers;
using Replicator.Core.Devices;
using Replicator.Core.Hashing;
using Replicator.Core.Volumes;

namespace Replicator.Core.Replication;

/// <summary>What the peer asks of this replica: apply its changes, order forwarded ones, serve reads and checksums.</summary>
internal sealed partial class ReplicatedVolume
{
    /// <summary>Applies a change the owner ordered (or, with <paramref name="resync"/>, resync data from the source).</summary>
    public async ValueTask ApplyFromPeerAsync(WriteOp op, CancellationToken cancellationToken, bool resync = false)
    {
        CheckRange(op.Offset, op.Length);
        if (!DiskUsable)
        {
            // The owner marks the change for this replica, and stops sending once the pair is paired again.
            throw Detached("apply a change to");
        }

        // The activity log covers this replica's half of ordered changes too: if this node loses
        // power with a change acknowledged but not yet durable, the extent is resynced after its
        // restart. Resync data needs no entry: its region is in the source's bitmap until applied.
        ReplicaStore.Activity activity;
        try
        {
            activity = resync
                ? new ReplicaStore.Activity(op.Offset, op.Length, Held: false)
                : await Replica.BeginActivityAsync(op.Offset, op.Length, cancellationToken);
        }
        catch (BlockDeviceException e) when (IsDiskFault(e))
        {
            OnLocalFault(e);
            throw;
        }

        try
        {
            await ApplyLocalAsync(op, cancellationToken);
            if (resync)
            {
                // No activity log covers resync data: its checksums reach the page cache with it.
                _local.WriteBackChecksums();
            }

            Replica.NoteInSync(op.Offset, op.Length);
        }
        catch (BlockDeviceException e) when (IsDiskFault(e))
        {
            // The disk failed or is full: it is detached, and the owner marks the change for it.
            OnLocalFault(e);
            throw;
        }
        catch (BlockDeviceException)
        {
            // This replica now lacks a change its peer acknowledged: it stops counting as up to
            // date, reads of the range go to the peer, and the owner resends it.
            Replica.MarkOutOfSync(op.Offset, op.Length);
            Replica.SetDiskState(ReplicaDiskState.Inconsistent);
            throw;
        }
        finally
        {
            Replica.EndActivity(activity);
        }
    }

    /// <summary>
    /// The peer flushes: what this replica holds becomes durable. A detached disk answers with its error,
    /// never with success: its contents no longer count, and the peer must not count them as a durable copy.
    /// </summary>
    public async ValueTask FlushForPeerAsync(CancellationToken cancellationToken)
    {
        if (!DiskUsable)
        {
            throw Detached("flush");
        }

        try
        {
            await Replica.FlushAsync(cancellationToken);
        }
        catch (BlockDeviceException e) when (IsDiskFault(e))
        {
            OnLocalFault(e, flushing: true);
            throw;
        }
    }

    /// <summary>Orders a change the peer forwarded: this node must be the owner.</summary>
    public async ValueTask OrderForwardedAsync(WriteOp op, CancellationToken cancellationToken)
    {
        CheckRange(op.Offset, op.Length);
        await WaitForPairingAsync(cancellationToken);
        var session = Session;
        if (session is not { LocalIsOwner: true } || await WriteOrderedAsync(session, op, cancellationToken) != Ordered.Done)
        {
            throw new NotOwnerException($"volume '{Name}': a forwarded write arrived, but this node does not order the volume's writes now");
        }
    }

    /// <summary>
    /// Reads this replica for the peer: a range it lacks during its resync, or a block it repairs. Every block is
    /// checked here first (see <see cref="ReadForPeer"/>); <paramref name="checksums"/>, for a block-aligned read,
    /// receives each block's checksum to send with it.
    /// </summary>
    public ValueTask ReadForPeerAsync(long offset, Memory<byte> destination, Memory<byte> checksums, CancellationToken cancellationToken)
    {
        CheckRange(offset, destination.Length);
        if (!Replica.IsUpToDate || !DiskUsable)
        {
            throw new BlockDeviceException(StorageError.NotPermitted, $"volume '{Name}' on this node is not up to date; it cannot serve the peer's reads");
        }

        if (!checksums.IsEmpty && (!BlockChecksum.IsAligned(offset, destination.Length) || checksums.Length != BlockChecksum.BytesFor(destination.Length)))
        {
            throw new BlockDeviceException(StorageError.InvalidArgument, $"block checksums are given for block-aligned reads only, not [{offset}, +{destination.Length})");
        }

        try
        {
            ReadForPeer(offset, destination.Span, checksums.Span);
        }
        catch (BlockDeviceException e) when (IsDiskFault(e))
        {
            OnLocalFault(e);
            throw;
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Hashes and statuses of the regions of <paramref name="regionSize"/> bytes over the range (see <see cref="RegionSums"/>),
    /// reading every block and checking it against its checksum. A damaged block is counted and logged here, and
    /// reported in its region's status; it is not repaired: the caller decides which side is good.
    /// </summary>
    public ValueTask<RegionSums> ChecksumsAsync(long offset, long length, int regionSize, CancellationToken cancellationToken)
    {
        CheckRange(offset, length);
        if (regionSize < BlockChecksum.BlockSize || regionSize > 16 << 20 || regionSize % BlockChecksum.BlockSize != 0 || !BlockChecksum.IsAligned(offset, length))
        {
            throw new BlockDeviceException(StorageError.InvalidArgument,
                $"region checksums need a region size that is a multiple of 4 KiB up to 16 MiB (not {regionSize}) over a 4 KiB-aligned range (not [{offset}, +{length}))");
        }

        if (!DiskUsable)
        {
            throw Detached("compute checksums of");
        }

        try
        {
            return ValueTask.FromResult(LocalChecksums(offset, length, regionSize));
        }
        catch (BlockDeviceException e) when (IsDiskFault(e))
        {
            OnLocalFault(e);
            throw;
        }
    }

    private RegionSums LocalChecksums(long offset, long length, int regionSize)
    {
        var count = RegionSums.CountFor(length, regionSize);
        var sums = new RegionSums(new ulong[count], new BlockStatus[count]);
        var buffer = ArrayPool<byte>.Shared.Rent(regionSize);
        var checksums = ArrayPool<byte>.Shared.Rent(BlockChecksum.BytesFor(regionSize));
        var damaged = new List<DamagedBlock>();
        try
        {
            for (var i = 0; i < count; i++)
            {
                var start = offset + ((long)i * regionSize);
                var size = (int)Math.Min(regionSize, offset + length - start);
                var regionChecksums = checksums.AsSpan(0, BlockChecksum.BytesFor(size));
                damaged.Clear();
                _local.ReadBlocks(start, buffer.AsSpan(0, size), regionChecksums, damaged);
                sums.Hashes[i] = ContentHash.Of(regionChecksums);
                foreach (var block in damaged)
                {
                    sums.Status[i] = RegionSums.Worse(sums.Status[i], block.Status);
                    if (block.Status == BlockStatus.Bad && Integrity.Detected(block.Offset, LocalName, IntegrityPath.Compare))
                    {
                        LogDamaged(Name, block.Offset, LocalName, IntegrityPath.Compare);
                    }
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            ArrayPool<byte>.Shared.Return(checksums);
        }

        return sums;
    }
}

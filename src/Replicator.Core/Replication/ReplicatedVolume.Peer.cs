using System.Buffers;
using System.Buffers.Binary;
using Replicator.Core.Devices;
using Replicator.Core.Hashing;

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
            await op.ApplyAsync(_local, cancellationToken);
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

    /// <summary>Reads this replica for the peer, which lacks the range during its resync.</summary>
    public ValueTask ReadForPeerAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        CheckRange(offset, destination.Length);
        if (!Replica.IsUpToDate || !DiskUsable)
        {
            throw new BlockDeviceException(StorageError.NotPermitted, $"volume '{Name}' on this node is not up to date; it cannot serve the peer's reads");
        }

        try
        {
            return _local.ReadAsync(offset, destination, cancellationToken);
        }
        catch (BlockDeviceException e) when (IsDiskFault(e))
        {
            OnLocalFault(e);
            throw;
        }
    }

    /// <summary>
    /// One XXH3-64 per region of <paramref name="regionSize"/> bytes over the range, computed over the
    /// contents (a hole hashes as the zeros it reads as), so both replicas compare equal exactly
    /// when their contents do, whatever their allocation.
    /// </summary>
    public async ValueTask<ulong[]> ChecksumsAsync(long offset, long length, int regionSize, CancellationToken cancellationToken)
    {
        CheckRange(offset, length);
        if (regionSize <= 0 || regionSize > 16 << 20)
        {
            throw new BlockDeviceException(StorageError.InvalidArgument, $"region size {regionSize} is outside 1 byte to 16 MiB");
        }

        if (!DiskUsable)
        {
            throw Detached("compute checksums of");
        }

        try
        {
            return await LocalChecksumsAsync(offset, length, regionSize, cancellationToken);
        }
        catch (BlockDeviceException e) when (IsDiskFault(e))
        {
            OnLocalFault(e);
            throw;
        }
    }

    private async ValueTask<ulong[]> LocalChecksumsAsync(long offset, long length, int regionSize, CancellationToken cancellationToken)
    {
        var count = (int)((length + regionSize - 1) / regionSize);
        var sums = new ulong[count];
        var allocation = await _local.GetAllocationAsync(offset, length, cancellationToken);
        var buffer = ArrayPool<byte>.Shared.Rent(regionSize);
        try
        {
            for (var i = 0; i < count; i++)
            {
                var start = offset + ((long)i * regionSize);
                var size = (int)Math.Min(regionSize, offset + length - start);
                if (IsHole(allocation, offset, start, size))
                {
                    buffer.AsSpan(0, size).Clear();
                }
                else
                {
                    await _local.ReadAsync(start, buffer.AsMemory(0, size), cancellationToken);
                }

                sums[i] = ContentHash.Of(buffer.AsSpan(0, size));
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return sums;
    }

    /// <summary>Encodes checksums for the wire (little-endian u64 each).</summary>
    public static byte[] EncodeChecksums(ulong[] sums)
    {
        var bytes = new byte[sums.Length * sizeof(ulong)];
        for (var i = 0; i < sums.Length; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(i * sizeof(ulong)), sums[i]);
        }

        return bytes;
    }

    public static ulong[] DecodeChecksums(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length % sizeof(ulong) != 0)
        {
            throw new InvalidDataException($"a checksum list of {bytes.Length} bytes is not a whole number of 8-byte values");
        }

        var sums = new ulong[bytes.Length / sizeof(ulong)];
        for (var i = 0; i < sums.Length; i++)
        {
            sums[i] = BinaryPrimitives.ReadUInt64LittleEndian(bytes[(i * sizeof(ulong))..]);
        }

        return sums;
    }

    private static bool IsHole(IReadOnlyList<AllocationExtent> allocation, long origin, long start, int size)
    {
        var position = origin;
        foreach (var extent in allocation)
        {
            var end = position + extent.Length;
            if (end > start)
            {
                if ((extent.State & AllocationState.Zero) == 0 || end < start + size)
                {
                    return false;
                }

                return true;
            }

            position = end;
        }

        return false;
    }
}

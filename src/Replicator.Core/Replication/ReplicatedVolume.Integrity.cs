using System.Buffers;
using Microsoft.Extensions.Logging;
using Replicator.Core.Devices;
using Replicator.Core.Hashing;
using Replicator.Core.Volumes;

namespace Replicator.Core.Replication;

/// <summary>
/// Block integrity on the replicated volume: every read of the local replica is checked block by block,
/// and a block that fails is repaired from the peer before the read returns, or the read fails.
/// </summary>
/// <remarks>
/// <para><b>Repair.</b> A damaged block is read from the peer only where the peer's copy is current: the
/// pair is connected and the block's region is not marked out of sync (a resync that compared both
/// sides may say so too). The peer reads its own copy checked against its own checksum (it never
/// repairs it from this node) and sends it with that checksum, which this node checks again on
/// arrival; the copy is then written here (not replicated) under the block's exclusive lock, and only
/// if the block still fails its check there: a write that replaced the block meanwhile is newer than
/// the copy. The read returns the copy. No good copy: the read fails with <see cref="CorruptBlockException"/>
/// (EIO) and the block is counted unrecoverable.</para>
/// <para><b>Unverified blocks</b> (see <see cref="ThinVolume.RecheckAfterCrash"/>) held a write that was
/// not durable when the node crashed: anything a disk can hold after a power loss. The peer's verified
/// copy replaces one where it can; else it is accepted as it is (settled), never reported as damage.</para>
/// </remarks>
internal sealed partial class ReplicatedVolume
{
    private const int BlockSize = BlockChecksum.BlockSize;

    [ThreadStatic]
    private static List<DamagedBlock>? t_damaged;

    /// <summary>This node's name, for logs and counters that say which replica a damaged block was on.</summary>
    public string LocalName { get; init; } = "this node";

    public IntegrityCounters Integrity { get; } = new();

    /// <summary>
    /// After a crash, before the volume serves anything: checks the blocks of the activity log's extents, marking
    /// those whose last write may not have been durable unverified (settled at once on a node without a peer).
    /// A disk that fails under the check is detached, like one that fails under a client's I/O.
    /// </summary>
    public CrashRecheck RecheckAfterCrash()
    {
        if (Replica.CrashRanges.Count == 0 || !DiskUsable)
        {
            // A detached disk is compared whole when it is attached again.
            return default;
        }

        CrashRecheck result;
        try
        {
            result = _local.RecheckAfterCrash(Replica.CrashRanges, settle: !HasPeer);
        }
        catch (BlockDeviceException e) when (IsDiskFault(e))
        {
            OnLocalFault(e);
            return default;
        }

        Integrity.MarkedUnverified(result.Unverified);
        LogRechecked(Name, Replica.CrashRanges.Count, result.CheckedBlocks, result.Unverified, result.Settled);
        return result;
    }

    /// <summary>Reads the local replica, repairing from the peer every block that fails its check (or failing the read).</summary>
    internal async ValueTask ReadCheckedAsync(long offset, Memory<byte> destination, IntegrityPath path, CancellationToken cancellationToken)
    {
        var damaged = t_damaged ??= [];
        damaged.Clear();
        _local.ReadBlocks(offset, destination.Span, default, damaged);
        if (damaged.Count == 0)
        {
            return;
        }

        var blocks = damaged.ToArray();
        damaged.Clear();
        foreach (var block in blocks)
        {
            var good = await RecoverBlockAsync(block, path, peerIsCurrent: false, cancellationToken);
            var start = Math.Max(offset, block.Offset);
            var end = Math.Min(offset + destination.Length, block.Offset + BlockSize);
            good.AsSpan((int)(start - block.Offset), (int)(end - start)).CopyTo(destination.Span[(int)(start - offset)..]);
        }
    }

    /// <summary>
    /// The good contents of a block of this replica that failed its check: the peer's verified copy (written here
    /// too), or for an unverified block with no such copy, what it holds. Throws <see cref="CorruptBlockException"/>
    /// when there is no good copy. <paramref name="peerIsCurrent"/>: the caller compared both replicas and knows the
    /// peer's copy is the one to take, even where the region is marked.
    /// </summary>
    internal async ValueTask<byte[]> RecoverBlockAsync(DamagedBlock block, IntegrityPath path, bool peerIsCurrent, CancellationToken cancellationToken)
    {
        var first = block.Status == BlockStatus.Bad && Integrity.Detected(block.Offset, LocalName, path);
        if (first)
        {
            LogDamaged(Name, block.Offset, LocalName, path);
        }

        string? peerProblem;
        var session = Session;
        if (session is null)
        {
            peerProblem = HasPeer ? $"{PeerName} is not connected" : "there is no other replica";
        }
        else if (!peerIsCurrent && Replica.IsMarked(block.Offset, BlockSize))
        {
            peerProblem = $"the copy on {PeerName} is not current (the region is out of sync)";
        }
        else
        {
            var data = new byte[BlockSize];
            var checksum = new byte[BlockChecksum.Size];
            try
            {
                await session.Peer.ReadAsync(block.Offset, data, checksum, cancellationToken);
                var repaired = _local.RepairBlock(block.Offset, data, BlockChecksum.Get(checksum, 0));
                if (block.Status == BlockStatus.Bad)
                {
                    Integrity.Healed(block.Offset, LocalName, path);
                    LogHealed(Name, block.Offset, LocalName, PeerName, repaired ? "rewritten" : "a newer write had replaced it meanwhile");
                }
                else
                {
                    Integrity.Settled(block.Offset, LocalName, path);
                }

                return data;
            }
            catch (Exception e) when (e is PeerFailedException or PeerUnavailableException)
            {
                peerProblem = $"{PeerName} has no good copy ({e.Message})";
            }
        }

        if (block.Status == BlockStatus.Unverified)
        {
            _local.SettleBlock(block.Offset);
            Integrity.Settled(block.Offset, LocalName, path);
            LogSettled(Name, block.Offset, peerProblem);
            var data = new byte[BlockSize];
            var again = new List<DamagedBlock>();
            _local.ReadBlocks(block.Offset, data, default, again);
            if (again.Count == 0)
            {
                return data;
            }
        }

        Integrity.Unrecoverable(block.Offset, LocalName, path, first);
        if (first)
        {
            LogUnrecoverable(Name, block.Offset, LocalName, peerProblem);
        }

        throw new CorruptBlockException(block.Offset, block.Status,
            $"volume '{Name}': the 4 KiB block at {block.Offset} fails its checksum on {LocalName} and cannot be repaired: {peerProblem}");
    }

    /// <summary>
    /// Applies a change to the local replica. A write of part of a block that fails its check (which it cannot
    /// merge into) gets the block repaired first, then runs again.
    /// </summary>
    private async ValueTask ApplyLocalAsync(WriteOp op, CancellationToken cancellationToken)
    {
        // A change merges into at most its first and last block.
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                await op.ApplyAsync(_local, cancellationToken);
                return;
            }
            catch (CorruptBlockException e) when (attempt < 2)
            {
                await RecoverBlockAsync(new DamagedBlock(e.Offset, e.Status), IntegrityPath.Write, peerIsCurrent: false, cancellationToken);
            }
        }
    }

    /// <summary>Computes the checksums of a block-aligned write once, where it enters the pair; they go to both replicas with it.</summary>
    private WriteOp WithChecksums(WriteOp op, out byte[]? rented)
    {
        rented = null;
        if (!op.IsBlockAligned || !op.Checksums.IsEmpty || !_local.BlockChecksums)
        {
            return op;
        }

        var bytes = BlockChecksum.BytesFor((int)op.Length);
        rented = ArrayPool<byte>.Shared.Rent(bytes);
        BlockChecksum.Compute(op.Data.Span, rented.AsSpan(0, bytes));
        return op with { Checksums = rented.AsMemory(0, bytes) };
    }

    /// <summary>
    /// Reads this replica for the peer (a block it repairs, a region it lacks), checked: a damaged block fails the
    /// request (this node never repairs its copy from the one asking); an unverified one is settled, since the peer
    /// asks because it has nothing better. A block-aligned read may ask for each block's checksum.
    /// </summary>
    private void ReadForPeer(long offset, Span<byte> destination, Span<byte> checksums)
    {
        var damaged = new List<DamagedBlock>();
        _local.ReadBlocks(offset, destination, checksums, damaged);
        if (damaged.Count == 0)
        {
            return;
        }

        foreach (var block in damaged)
        {
            if (block.Status == BlockStatus.Unverified)
            {
                _local.SettleBlock(block.Offset);
                Integrity.Settled(block.Offset, LocalName, IntegrityPath.PeerRead);
                continue;
            }

            if (Integrity.Detected(block.Offset, LocalName, IntegrityPath.PeerRead))
            {
                LogDamaged(Name, block.Offset, LocalName, IntegrityPath.PeerRead);
            }

            throw new CorruptBlockException(block.Offset, block.Status,
                $"volume '{Name}': the 4 KiB block at {block.Offset} fails its checksum on {LocalName} too");
        }

        damaged.Clear();
        _local.ReadBlocks(offset, destination, checksums, damaged);
        if (damaged.Count > 0)
        {
            throw new CorruptBlockException(damaged[0].Offset, damaged[0].Status, $"volume '{Name}': the 4 KiB block at {damaged[0].Offset} fails its checksum on {LocalName}");
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Volume {Volume}: the 4 KiB block at {Offset} on {Replica} fails its checksum ({Path}): the disk returned wrong data")]
    private partial void LogDamaged(string volume, long offset, string replica, IntegrityPath path);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Volume}: healed the 4 KiB block at {Offset} on {Replica} from {Peer}'s verified copy ({What})")]
    private partial void LogHealed(string volume, long offset, string replica, string peer, string what);

    [LoggerMessage(Level = LogLevel.Critical, Message = "Volume {Volume}: the 4 KiB block at {Offset} on {Replica} fails its checksum and cannot be repaired ({Reason}); it reads as an I/O error")]
    private partial void LogUnrecoverable(string volume, long offset, string replica, string? reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Volume}: the 4 KiB block at {Offset}, written when the node crashed and not vouched for, is accepted as it is ({Reason}); it was never acknowledged as durable")]
    private partial void LogSettled(string volume, long offset, string? reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Volume}: after the crash, checked the {Extents} activity-log extents ({Blocks} blocks of 4 KiB): {Unverified} held a write that was not durable and wait for the peer's copy, {Settled} were accepted as they are")]
    private partial void LogRechecked(string volume, int extents, long blocks, long unverified, long settled);
}

using Microsoft.Extensions.Logging;
using Replicator.Core.Devices;
using Replicator.Core.Pool;
using Replicator.Core.Volumes;

namespace Replicator.Core.Replication;

/// <summary>
/// A volume as a node of the pair serves it: the local thin replica, kept identical to the
/// peer's. This is what the NBD server exports on a node.
/// </summary>
/// <remarks>
/// <para><b>Write path (protocol C).</b> Connected, on the owner (see <see cref="ReplicationSession"/>):
/// order the range → note its extent in the activity log (durably, only when the extent is new)
/// → apply locally and on the peer in parallel → acknowledge once both are done. Connected, on
/// the other node: forward to the owner, which replicates back before it answers. A write the
/// peer does not confirm (the link died, or its disk refused) is recorded in the out-of-sync
/// bitmap before it is acknowledged, and the replica's generation moves on, so a reconnect
/// resends exactly those regions in the right direction.</para>
/// <para><b>Alone</b> (no peer): allowed only with the quorum's consent and an up-to-date replica;
/// every change marks the bitmap (persisted) before it is applied.</para>
/// <para><b>Reads</b> are served locally, except regions this replica lacks while it is a resync
/// target, which are read from the peer. Paired, only while this node holds the connection's read
/// lease (see <see cref="PeerReadLease"/>): otherwise the link may be gone and the peer writing
/// alone already, so the read waits for the next Pong, or for the connection to end and the rule
/// for a replica alone to apply. Alone, only with the quorum's consent.</para>
/// </remarks>
internal sealed partial class ReplicatedVolume : IBlockDevice, IDisposable
{
    private static readonly TimeSpan DetachWait = TimeSpan.FromSeconds(30);

    private readonly ThinVolume _local;
    private readonly RangeLock _order = new();
    private readonly IWriteQuorum _quorum;
    private readonly ILogger _logger;
    private ReplicationSession? _session;
    private PairingHold? _pairing;

    /// <summary>The read lease of the last connection this volume was paired on: writing alone waits out what this node granted on it.</summary>
    private PeerReadLease? _lastLease;

    private long _lastForegroundTicks;

    /// <param name="peerName">The peer node's name, or null for a node without a peer (nothing to replicate, nothing to track).</param>
    /// <param name="earlierPromise">What this node may have promised its peer before it started (see <see cref="PeerReadLease.PromisedBeforeThisProcess"/>): the first write alone waits it out.</param>
    public ReplicatedVolume(ThinVolume local, ReplicaStore replica, IWriteQuorum quorum, string? peerName, ILogger logger, PeerReadLease? earlierPromise = null)
    {
        _local = local;
        _lastLease = earlierPromise;
        Replica = replica;
        Replica.FlushData = local.FlushAsync;
        _quorum = quorum;
        PeerName = peerName ?? "(none)";
        HasPeer = peerName is not null;
        _logger = logger;
        Resync = new ResyncEngine(this, logger);
        Scrub = new ScrubEngine(this, replica.Files, Path.Combine(replica.Directory, ScrubStateFile.FileName), logger);
        replica.BeforeActivityLogWrite = local.WriteBackChecksums;
        _pairingState = PairingState.Initial(replica.Status);
    }

    /// <summary>Whether this node has a peer at all; a single node serves its volumes without replication.</summary>
    public bool HasPeer { get; }

    /// <summary>Whether clients have used the volume in the last 100 ms (the resync yields to them).</summary>
    public bool ForegroundActive => Environment.TickCount64 - Volatile.Read(ref _lastForegroundTicks) < 100;

    public Guid Id => _local.Id;

    public string Name => _local.Name;

    public long Size => _local.Size;

    public DeviceFeatures Features => _local.Features;

    public ThinVolume Local => _local;

    public ReplicaStore Replica { get; }

    public string PeerName { get; }

    public ResyncEngine Resync { get; }

    public ScrubEngine Scrub { get; }

    public ReplicationSession? Session => Volatile.Read(ref _session);

    /// <summary>
    /// Grows the volume to <paramref name="size"/> bytes in <paramref name="pool"/>: the replica's
    /// bitmap first, then the pool's volume. A bitmap larger than its volume costs nothing (the next
    /// resize or start uses it as it is), while a volume larger than its bitmap (a resize whose second
    /// step failed) could not mark a write to its new end, and every such write would fail.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The size is not a valid volume size, or smaller than the volume: nothing changes.</exception>
    public void Grow(StoragePool pool, long size)
    {
        ArgumentNullException.ThrowIfNull(pool);
        StoragePool.ValidateSize(size);
        if (size < _local.Size)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, $"volume '{Name}' is {_local.Size} bytes; shrinking is not supported");
        }
        Replica.Grow(size);
        pool.ResizeVolume(_local, size);
    }

    public IWriteQuorum Quorum => _quorum;

    public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        CheckRange(offset, destination.Length);
        NoteForeground();
        if (!DiskUsable)
        {
            return ReadThroughPeerAsync(offset, destination, cancellationToken);
        }

        var session = Session;
        if (session is null && HasPeer)
        {
            if (Replica.DiskState != ReplicaDiskState.UpToDate)
            {
                // Outdated: the peer wrote alone since. Inconsistent: a resync to this replica has not
                // finished, and without the peer's bitmap this side cannot tell which regions it has.
                throw new BlockDeviceException(StorageError.Io, Replica.DiskState == ReplicaDiskState.Outdated
                    ? $"volume '{Name}' on this node is outdated: {PeerName} has written it alone since; read through {PeerName}"
                    : $"volume '{Name}' on this node is {Replica.DiskState.ToString().ToLowerInvariant()} until a resync from {PeerName} completes, and {PeerName} is not connected; read through {PeerName}");
            }

            return ReadAloneAsync(offset, destination, cancellationToken);
        }

        if (Replica.LacksData(offset, destination.Length))
        {
            return ReadFromPeerAsync(offset, destination, cancellationToken);
        }

        if (session is not null && !session.Lease.IsHeld)
        {
            return ReadOnceLeasedAsync(session, offset, destination, cancellationToken);
        }

        return ReadLocalAsync(offset, destination, IntegrityPath.Read, cancellationToken);
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, IoFlags flags, CancellationToken cancellationToken = default) =>
        ExecuteAsync(WriteOp.Write(offset, source, flags), cancellationToken);

    public ValueTask TrimAsync(long offset, long length, IoFlags flags, CancellationToken cancellationToken = default) =>
        ExecuteAsync(WriteOp.Trim(offset, length, flags), cancellationToken);

    public ValueTask WriteZeroesAsync(long offset, long length, IoFlags flags, CancellationToken cancellationToken = default) =>
        ExecuteAsync(WriteOp.WriteZeroes(offset, length, flags), cancellationToken);

    /// <summary>Makes every write acknowledged before durable on each replica that holds them all (see <see cref="FlushBothAsync"/>).</summary>
    public ValueTask FlushAsync(CancellationToken cancellationToken = default) => FlushBothAsync(cancellationToken);

    public ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken = default) =>
        _local.CacheAsync(offset, length, cancellationToken);

    /// <summary>
    /// The local allocation, except where this replica may lack data (its disk is detached, or a resync to it
    /// has not covered the range): that is reported as data, since a hole here may be data on the peer.
    /// </summary>
    public ValueTask<IReadOnlyList<AllocationExtent>> GetAllocationAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        CheckRange(offset, length);
        if (HasPeer && length > 0 && (!DiskUsable || Replica.LacksData(offset, length)))
        {
            return ValueTask.FromResult<IReadOnlyList<AllocationExtent>>([new AllocationExtent(length, AllocationState.Data)]);
        }

        return _local.GetAllocationAsync(offset, length, cancellationToken);
    }

    /// <summary>Compares every region with the peer and sends only those that differ; only the owner can.</summary>
    public void StartChecksumResync()
    {
        var session = Session ?? throw new InvalidOperationException($"volume '{Name}' is not connected to {PeerName}; a checksum resync needs both replicas");
        if (!session.LocalIsOwner)
        {
            throw new InvalidOperationException($"volume '{Name}' has its writes ordered by {session.PeerName}; start the checksum resync there");
        }

        Resync.StartChecksumPass();
    }

    /// <summary>Orders a range against foreground writes (the resync and verify take ranges this way).</summary>
    public ValueTask<RangeLock.Releaser> OrderRangeAsync(long offset, long length, CancellationToken cancellationToken) =>
        _order.AcquireAsync(offset, length, cancellationToken);

    /// <summary>A clean stop: empties the activity log so the next start has nothing to recover.</summary>
    public void Dispose()
    {
        Scrub.StopAsync().GetAwaiter().GetResult();

        // Flushes the data first, checksums included, before the activity log stops naming it.
        Replica.CloseCleanly();
        Replica.Dispose();
    }

    /// <summary>
    /// Without its peer this replica is current only while no other node writes alone: the peer may
    /// have the witness's vote and be writing now. So it serves reads under the rule for writes.
    /// </summary>
    private async ValueTask ReadAloneAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        await _quorum.EnsureMayServeAloneAsync(this, cancellationToken);
        try
        {
            await ReadCheckedAsync(offset, destination, IntegrityPath.Read, cancellationToken);
        }
        catch (BlockDeviceException e) when (IsDiskFault(e))
        {
            OnLocalFault(e);
            throw;
        }
    }

    /// <summary>
    /// Paired without the read lease (Pongs are late, or the link has just broken): waits for the
    /// next Pong, or for the connection to end, then reads under whichever rule applies by then.
    /// </summary>
    private async ValueTask ReadOnceLeasedAsync(ReplicationSession session, long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        bool held;
        try
        {
            held = await session.Lease.WaitHeldAsync(DetachWait, cancellationToken);
        }
        catch (TimeoutException e)
        {
            throw new BlockDeviceException(StorageError.Io, $"volume '{Name}': {PeerName} has renewed no read lease for {DetachWait.TotalSeconds} s, yet the link stays up; read through {PeerName}", e);
        }

        if (!held)
        {
            await WaitDetachedAsync(session, cancellationToken);
        }

        await ReadAsync(offset, destination, cancellationToken);
    }

    private async ValueTask ReadFromPeerAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        var session = Session ?? throw new BlockDeviceException(StorageError.Io,
            $"volume '{Name}' on this node lacks data at [{offset}, +{destination.Length}) until its resync completes, and its peer {PeerName} is not connected");
        try
        {
            await session.Peer.ReadAsync(offset, destination, default, cancellationToken);
        }
        catch (PeerUnavailableException e)
        {
            throw new BlockDeviceException(StorageError.Io, $"volume '{Name}': reading a region not yet resynced from {PeerName} failed: {e.Message}", e);
        }
        catch (PeerFailedException e)
        {
            throw new BlockDeviceException(e.Error, e.Message, e);
        }
    }

    /// <summary>Waits for a pairing in progress to end (a forwarded write may arrive just before this side attaches).</summary>
    internal async ValueTask WaitForPairingAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _pairing) is { } pairing)
        {
            try
            {
                await pairing.Done.WaitAsync(DetachWait, cancellationToken);
            }
            catch (TimeoutException)
            {
                throw new BlockDeviceException(StorageError.Io, $"volume '{Name}': pairing with {PeerName} did not finish within {DetachWait.TotalSeconds} s");
            }
        }
    }

    private void NoteForeground() => Volatile.Write(ref _lastForegroundTicks, Environment.TickCount64);

    private void CheckRange(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > Size - length)
        {
            throw new BlockDeviceException(StorageError.OutOfRange, $"range [{offset}, +{length}) is outside volume '{Name}' of {Size} bytes");
        }
    }
}

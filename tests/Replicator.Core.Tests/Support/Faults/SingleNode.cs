using Microsoft.Extensions.Logging.Abstractions;
using Replicator.Core.Pool;
using Replicator.Core.Replication;
using Replicator.Core.Storage;
using Replicator.Core.Tests.Replication.Support;

namespace Replicator.Core.Tests.Support.Faults;

/// <summary>
/// The storage engine of one node, opened the way the node opens it, on a <see cref="FaultFileSystem"/>:
/// the pool with its volumes, and for each volume its replica (bitmap, activity log, metadata) and the
/// <see cref="ReplicatedVolume"/> over both, whose peer is away — so every change goes through the
/// activity log and the out-of-sync bitmap, as it does on a node writing alone with the witness's vote.
/// </summary>
/// <remarks>
/// After a power loss the test drops this object without closing anything (the process died) and
/// calls <see cref="Open"/> again on the same file system.
/// </remarks>
internal sealed class SingleNode
{
    public const string PoolDirectory = "/node/pool";
    public const string ReplicasDirectory = "/node/replicas";
    public const string DataFile = PoolDirectory + "/data-000.img";

    private readonly Dictionary<Guid, ReplicatedVolume> _volumes = [];

    private SingleNode(FaultFileSystem files, StoragePool pool, string? peerName)
    {
        Files = files;
        Pool = pool;
        PeerName = peerName;
    }

    /// <summary>The peer this node is configured with (away the whole time), or null for a node without one.</summary>
    public string? PeerName { get; }

    public FaultFileSystem Files { get; }

    public StoragePool Pool { get; }

    public TestQuorum Quorum { get; } = new();

    public IReadOnlyDictionary<Guid, ReplicatedVolume> Volumes => _volumes;

    /// <summary>Opens (on first use, creates) the pool and every volume's replica, as the node does at start.</summary>
    public static SingleNode Open(FaultFileSystem files, PoolOptions options, long checkpointThreshold, string? peerName = "peer")
    {
        var pool = StoragePool.Exists(files, PoolDirectory)
            ? StoragePool.Open(files, PoolDirectory, NullLogger.Instance)
            : StoragePool.Create(files, PoolDirectory, options, NullLogger.Instance);
        pool.CheckpointThreshold = checkpointThreshold;
        files.CreateDirectory(ReplicasDirectory);
        var node = new SingleNode(files, pool, peerName);
        foreach (var volume in pool.Volumes)
        {
            var directory = ReplicaDirectory(volume.Id);
            var replica = ReplicaStore.Exists(files, directory)
                ? ReplicaStore.Open(files, directory, volume.Size, NullLogger.Instance)
                : NewReplica(files, volume.Id, volume.Size);
            var replicated = new ReplicatedVolume(volume, replica, node.Quorum, peerName, NullLogger.Instance);
            if (replica.Crashed)
            {
                // As the node does at start (ReplicationManager): the blocks a crash may have torn from their checksums are checked first.
                replicated.RecheckAfterCrash();
            }

            node._volumes[volume.Id] = replicated;
        }

        return node;
    }

    public static string ReplicaDirectory(Guid volume) => Path.Combine(ReplicasDirectory, volume.ToString());

    public ReplicatedVolume CreateVolume(string name, long size)
    {
        var local = Pool.CreateVolume(name, size);
        var volume = new ReplicatedVolume(local, NewReplica(Files, local.Id, size), Quorum, PeerName, NullLogger.Instance);
        _volumes[local.Id] = volume;
        return volume;
    }

    /// <summary>Grows a volume as the node does (<see cref="ReplicatedVolume.Grow"/>).</summary>
    public void ResizeVolume(ReplicatedVolume volume, long size) => volume.Grow(Pool, size);

    /// <summary>Deletes a volume as the node does: closes its replica, deletes it from the pool, then removes the replica's files.</summary>
    public void DeleteVolume(ReplicatedVolume volume)
    {
        _volumes.Remove(volume.Id);
        volume.Dispose();
        Pool.DeleteVolume(volume.Local);
        foreach (var file in Files.ListFiles(ReplicaDirectory(volume.Id), ""))
        {
            Files.DeleteFile(file);
        }

        Files.SyncDirectory(ReplicaDirectory(volume.Id));
    }

    /// <summary>A clean stop: every replica closed (activity log emptied), then the pool (checkpoint).</summary>
    public void Close()
    {
        foreach (var volume in _volumes.Values)
        {
            volume.Dispose();
        }

        Pool.Dispose();
    }

    /// <summary>
    /// A replica whose activity log has 64 slots of 64 KiB: more than the extents of a test volume, so
    /// nothing is evicted, but small enough that after a crash only the extents written are marked again,
    /// and the bitmap's own marks must be right for the rest.
    /// </summary>
    private static ReplicaStore NewReplica(IFileSystem files, Guid volume, long size) =>
        ReplicaStore.Create(files, ReplicaDirectory(volume),
            ReplicaMetadata.ForNewVolume(volume, Guid.Empty, activityLogSlots: 64, activityLogExtentSize: 64 << 10), size, NullLogger.Instance);
}

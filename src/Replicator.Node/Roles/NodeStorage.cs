using Replicator.Core.Pool;
using Replicator.Node.Configuration;

namespace Replicator.Node.Roles;

/// <summary>
/// The node's storage pool, opened when the node starts (created on first start) and closed,
/// with a checkpoint, when it stops.
/// </summary>
internal sealed class NodeStorage : IDisposable
{
    public NodeStorage(string directory, NodeConfig config, ILogger<NodeStorage> logger)
    {
        var poolDirectory = Path.Combine(directory, "pool");
        if (StoragePool.ExistsOnDisk(poolDirectory))
        {
            Pool = StoragePool.OpenOnDisk(poolDirectory, logger, config.BlockChecksums);
        }
        else
        {
            Pool = StoragePool.CreateOnDisk(poolDirectory,
                new PoolOptions { FileCapacity = config.PoolFileCapacity, ExtentSize = config.ExtentSize, BlockChecksums = config.BlockChecksums }, logger);
            logger.LogInformation("Created a {Capacity} storage pool in {Directory}", Core.ByteSize.Format(config.PoolFileCapacity), poolDirectory);
        }
    }

    public StoragePool Pool { get; }

    public void Dispose() => Pool.Dispose();
}

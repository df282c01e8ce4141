using Replicator.Core.Pool;
using Replicator.Node.Configuration;

namespace Replicator.Node.Roles;

/// <summary>
/// The node's pool and volumes: what the NBD server exports and the admin API manages. Opened
/// when the node starts (creating the pool on first start) and closed, with a checkpoint, when it stops.
/// </summary>
internal sealed class NodeStorage : IDisposable
{
    public NodeStorage(string directory, NodeConfig config, ILogger<NodeStorage> logger)
    {
        var poolDirectory = Path.Combine(directory, "pool");
        if (StoragePool.ExistsOnDisk(poolDirectory))
        {
            Pool = StoragePool.OpenOnDisk(poolDirectory, logger);
        }
        else
        {
            Pool = StoragePool.CreateOnDisk(poolDirectory, new PoolOptions { FileCapacity = config.PoolFileCapacity, ExtentSize = config.ExtentSize }, logger);
            logger.LogInformation("Created a {Capacity} storage pool in {Directory}", Core.ByteSize.Format(config.PoolFileCapacity), poolDirectory);
        }

        Exports = new Storage.VolumeExports(Pool);
    }

    public StoragePool Pool { get; }

    public Storage.VolumeExports Exports { get; }

    public void Dispose() => Pool.Dispose();
}

using Replicator.Core.Pool;
using Replicator.Core.Storage;
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
        PoolDirectory = Path.Combine(directory, "pool");
        Pool = OpenPool(Files, directory, config, logger);
    }

    /// <summary>The file system every file of the node is kept in.</summary>
    public IFileSystem Files { get; } = PhysicalFileSystem.Instance;

    public StoragePool Pool { get; }

    /// <summary>Where the pool's files live (its file system is the one that can fill up).</summary>
    public string PoolDirectory { get; }

    /// <summary>Opens the pool of the node in <paramref name="directory"/>, creating it as configured on first use.</summary>
    public static StoragePool OpenPool(IFileSystem files, string directory, NodeConfig config, ILogger logger)
    {
        var poolDirectory = Path.Combine(directory, "pool");
        if (StoragePool.Exists(files, poolDirectory))
        {
            return StoragePool.Open(files, poolDirectory, logger, config.BlockChecksums);
        }

        var pool = StoragePool.Create(files, poolDirectory, new PoolOptions { FileCapacity = config.PoolFileCapacity, ExtentSize = config.ExtentSize, BlockChecksums = config.BlockChecksums }, logger);
        logger.LogInformation("Created a {Capacity} storage pool in {Directory}", Core.ByteSize.Format(config.PoolFileCapacity), poolDirectory);
        return pool;
    }

    public void Dispose() => Pool.Dispose();
}

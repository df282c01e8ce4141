using System.Globalization;
using Replicator.Core.Storage;
using Replicator.Node.Configuration;
using Replicator.Node.Replication;

namespace Replicator.Node.Storage;

/// <summary>
/// <c>replicator node rebuild</c>: brings a node whose storage is damaged (a journal damaged in the middle, a
/// damaged activity log or replica metadata; see <see cref="StorageDamagedException"/>) back as an empty
/// replica of every volume, which its peer then fills by a full resync. Nothing is deleted: the pool and
/// the replica files move, whole, to <c>DIR/damaged-TIME/</c>.
/// </summary>
/// <remarks>
/// What stays: the node's configuration and token, each volume's settings (its preferred node) and the
/// tombstones of volumes deleted here, so a volume deleted while the peer was away is not brought back.
/// At the next start the pool is created empty; on connecting, the node creates every volume its peer has
/// as an empty replica, which the generation rules make the target of a full resync.
/// </remarks>
internal static class NodeRebuild
{
    /// <summary>Sets the storage aside and returns where it went.</summary>
    /// <exception cref="InvalidOperationException">Why the node cannot be rebuilt (running, no peer, no storage).</exception>
    public static string Run(string directory, NodeConfig config, DateTimeOffset now)
    {
        if (config.Peer is null)
        {
            throw new InvalidOperationException(
                $"node {config.Name} has no peer to take its volumes back from; restore its directory from a backup instead");
        }

        var pool = Path.Combine(directory, "pool");
        var replicas = Path.Combine(directory, ReplicationManager.ReplicasDirectoryName);
        if (!Directory.Exists(pool) && !Directory.Exists(replicas))
        {
            throw new InvalidOperationException($"{directory} holds no pool and no replica files: there is nothing to rebuild");
        }

        EnsureStopped(pool, config.Name);
        var aside = Path.Combine(directory, "damaged-" + now.UtcDateTime.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture));
        Directory.CreateDirectory(aside);
        if (Directory.Exists(pool))
        {
            Directory.Move(pool, Path.Combine(aside, "pool"));
        }

        if (Directory.Exists(replicas))
        {
            var old = Path.Combine(aside, ReplicationManager.ReplicasDirectoryName);
            Directory.Move(replicas, old);
            KeepSettings(old, replicas);
        }

        Posix.SyncDirectory(directory);
        return aside;
    }

    /// <summary>The node must not be running: it holds the pool's lock while it is.</summary>
    private static void EnsureStopped(string pool, string name)
    {
        var lockPath = Path.Combine(pool, "pool.lock");
        if (!File.Exists(lockPath))
        {
            return;
        }

        try
        {
            using var held = PhysicalFileSystem.Instance.LockFile(lockPath);
        }
        catch (IOException)
        {
            throw new InvalidOperationException($"node {name} is running (it holds {lockPath}); stop it first");
        }
    }

    /// <summary>Copies what is not replica state into the new replicas directory: tombstones and each volume's settings.</summary>
    private static void KeepSettings(string from, string to)
    {
        Directory.CreateDirectory(to);
        var tombstones = Path.Combine(from, "deleted.json");
        if (File.Exists(tombstones))
        {
            File.Copy(tombstones, Path.Combine(to, "deleted.json"));
        }

        foreach (var volume in Directory.EnumerateDirectories(from))
        {
            var settings = Path.Combine(volume, VolumeSettings.FileName);
            if (Guid.TryParse(Path.GetFileName(volume), out _) && File.Exists(settings))
            {
                var target = Directory.CreateDirectory(Path.Combine(to, Path.GetFileName(volume)));
                File.Copy(settings, Path.Combine(target.FullName, VolumeSettings.FileName));
            }
        }

        Posix.SyncDirectory(to);
    }
}

using System.Text.Json;
using Replicator.Node.Configuration;

namespace Replicator.Node.Replication;

/// <summary>
/// Ids of volumes deleted on this node (<c>replicas/deleted.json</c>). When the peer still has one
/// (it was away during the delete), this node asks it to delete its replica instead of
/// recreating the volume from it.
/// </summary>
internal sealed class Tombstones
{
    private readonly string _path;
    private readonly HashSet<Guid> _ids;
    private readonly Lock _lock = new();

    public Tombstones(string replicasDirectory)
    {
        _path = Path.Combine(replicasDirectory, "deleted.json");
        _ids = File.Exists(_path) ? JsonSerializer.Deserialize<HashSet<Guid>>(File.ReadAllText(_path), NodeConfig.JsonOptions) ?? [] : [];
    }

    public bool Contains(Guid id)
    {
        lock (_lock)
        {
            return _ids.Contains(id);
        }
    }

    public void Add(Guid id)
    {
        lock (_lock)
        {
            if (_ids.Add(id))
            {
                File.WriteAllText(_path + ".tmp", JsonSerializer.Serialize(_ids, NodeConfig.JsonOptions));
                File.Move(_path + ".tmp", _path, overwrite: true);
            }
        }
    }
}

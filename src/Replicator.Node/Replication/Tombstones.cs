using System.Text.Json;
using Replicator.Core.Storage;
using Replicator.Node.Configuration;

namespace Replicator.Node.Replication;

/// <summary>
/// Ids of volumes deleted on this node (<c>replicas/deleted.json</c>). When the peer still has one
/// (it was away during the delete), this node asks it to delete its replica instead of
/// recreating the volume from it.
/// </summary>
internal sealed class Tombstones
{
    private readonly IFileSystem _files;
    private readonly string _path;
    private readonly HashSet<Guid> _ids;
    private readonly Lock _lock = new();

    public Tombstones(IFileSystem files, string replicasDirectory)
    {
        _files = files;
        _path = Path.Combine(replicasDirectory, "deleted.json");
        _ids = files.FileExists(_path) ? JsonSerializer.Deserialize<HashSet<Guid>>(files.ReadAllBytes(_path), NodeConfig.JsonOptions) ?? [] : [];
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
            if (!_ids.Add(id))
            {
                return;
            }

            try
            {
                _files.WriteAtomically(_path, JsonSerializer.SerializeToUtf8Bytes(_ids, NodeConfig.JsonOptions));
            }
            catch
            {
                // Not stored, so not known: the caller's delete fails, and the peer is not told a delete happened.
                _ids.Remove(id);
                throw;
            }
        }
    }
}

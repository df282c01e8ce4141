using System.Diagnostics.CodeAnalysis;
using Replicator.Core.Devices;
using Replicator.Core.Pool;
using Replicator.Core.Volumes;
using Replicator.Protocol.Nbd;

namespace Replicator.Node.Storage;

/// <summary>
/// The node's volumes as NBD exports. Counts the connections attached to each volume, so the
/// admin side can refuse to delete a volume a client is using.
/// </summary>
internal sealed class VolumeExports(StoragePool pool) : INbdExportCatalog
{
    private readonly Dictionary<Guid, int> _attached = [];
    private readonly Lock _lock = new();

    public IReadOnlyList<NbdExportInfo> ListExports() =>
        pool.Volumes.OrderBy(v => v.Name, StringComparer.Ordinal)
            .Select(v => new NbdExportInfo(v.Name, $"replicated volume {v.Name} ({Core.ByteSize.Format(v.Size)})"))
            .ToList();

    public bool TryAttach(string name, [NotNullWhen(true)] out IExportAttachment? attachment, out AttachRefusal refusal, out string? message)
    {
        ThinVolume? volume;
        lock (_lock)
        {
            volume = pool.Find(name);
            if (volume is null)
            {
                attachment = null;
                refusal = AttachRefusal.UnknownExport;
                message = $"no volume named '{name}' on this node";
                return false;
            }

            _attached[volume.Id] = _attached.GetValueOrDefault(volume.Id) + 1;
        }

        attachment = new Attachment(this, volume.Id, volume);
        refusal = AttachRefusal.None;
        message = null;
        return true;
    }

    public int AttachedCount(Guid volumeId)
    {
        lock (_lock)
        {
            return _attached.GetValueOrDefault(volumeId);
        }
    }

    /// <summary>Deletes a volume unless a client is attached to it; no client can attach while this runs.</summary>
    public void DeleteUnlessAttached(ThinVolume volume)
    {
        lock (_lock)
        {
            var attached = _attached.GetValueOrDefault(volume.Id);
            if (attached > 0)
            {
                throw new VolumeInUseException(
                    $"volume '{volume.Name}' has {attached} attached NBD connection(s); disconnect them before deleting it");
            }

            pool.DeleteVolume(volume);
        }
    }

    private void Detach(Guid volumeId)
    {
        lock (_lock)
        {
            if (--_attached[volumeId] == 0)
            {
                _attached.Remove(volumeId);
            }
        }
    }

    private sealed class Attachment(VolumeExports owner, Guid volumeId, IBlockDevice device) : IExportAttachment
    {
        private int _disposed;

        public IBlockDevice Device { get; } = device;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                owner.Detach(volumeId);
            }
        }
    }
}

internal sealed class VolumeInUseException(string message) : InvalidOperationException(message);

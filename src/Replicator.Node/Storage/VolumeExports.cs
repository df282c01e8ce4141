using System.Diagnostics.CodeAnalysis;
using Replicator.Core.Replication;
using Replicator.Node.Metrics;
using Replicator.Node.Replication;
using Replicator.Protocol.Nbd;

namespace Replicator.Node.Storage;

/// <summary>
/// The node's replicated volumes as NBD exports. Counts the connections attached to each volume,
/// so a volume a client is using is not deleted under it.
/// </summary>
internal sealed class VolumeExports : INbdExportCatalog
{
    private readonly Dictionary<Guid, int> _attached = [];
    private readonly Lock _lock = new();
    private readonly ReplicationManager _volumes;
    private readonly NodeTelemetry _telemetry;

    public VolumeExports(ReplicationManager volumes, NodeTelemetry telemetry)
    {
        _volumes = volumes;
        _telemetry = telemetry;
        volumes.AttachedClients = v => AttachedCount(v.Id);
    }

    public IReadOnlyList<NbdExportInfo> ListExports() =>
        _volumes.Volumes.Select(v => new NbdExportInfo(v.Name, $"replicated volume {v.Name} ({Core.ByteSize.Format(v.Size)})")).ToList();

    public bool TryAttach(string name, [NotNullWhen(true)] out IExportAttachment? attachment, out AttachRefusal refusal, out string? message)
    {
        lock (_lock)
        {
            var volume = _volumes.Find(name);
            if (volume is null)
            {
                attachment = null;
                refusal = AttachRefusal.UnknownExport;
                message = $"no volume named '{name}' on this node";
                return false;
            }

            _attached[volume.Id] = _attached.GetValueOrDefault(volume.Id) + 1;
            attachment = new Attachment(this, volume, new MeteredDevice(volume, _telemetry.Io(volume.Name), _telemetry.Metrics));
            refusal = AttachRefusal.None;
            message = null;
            return true;
        }
    }

    /// <summary>Clients' I/O per second on the volume over the last second, once a client has used it.</summary>
    public IoRates? Rates(string volume) => _telemetry.Rates(volume);

    public int AttachedCount(Guid volumeId)
    {
        lock (_lock)
        {
            return _attached.GetValueOrDefault(volumeId);
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

    private sealed class Attachment(VolumeExports owner, ReplicatedVolume volume, Core.Devices.IBlockDevice device) : IExportAttachment
    {
        private int _disposed;

        public Core.Devices.IBlockDevice Device => device;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                owner.Detach(volume.Id);
            }
        }
    }
}

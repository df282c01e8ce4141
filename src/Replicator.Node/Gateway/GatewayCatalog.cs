using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using Replicator.Protocol.Nbd;

namespace Replicator.Node.Gateway;

/// <summary>
/// The volumes the gateway exports, one <see cref="GatewayVolume"/> each however many clients attach (it counts
/// them, and connects to the nodes only while there are any). A name not
/// known yet makes the gateway ask the nodes at once (a volume created a moment ago), so a client need not wait
/// for the next poll.
/// </summary>
internal sealed class GatewayCatalog : INbdExportCatalog
{
    private static readonly TimeSpan RefreshWait = TimeSpan.FromSeconds(10);
    private readonly ConcurrentDictionary<string, GatewayVolume> _volumes = new(StringComparer.Ordinal);

    /// <summary>Asks the nodes for their volumes now; set by the service that polls them.</summary>
    public Func<Task>? Refresh { get; set; }

    public IReadOnlyCollection<GatewayVolume> Volumes => [.. _volumes.Values.OrderBy(v => v.Name, StringComparer.Ordinal)];

    public bool TryGet(string name, [NotNullWhen(true)] out GatewayVolume? volume) => _volumes.TryGetValue(name, out volume);

    public bool TryAdd(GatewayVolume volume) => _volumes.TryAdd(volume.Name, volume);

    public bool TryRemove(string name, [NotNullWhen(true)] out GatewayVolume? volume) => _volumes.TryRemove(name, out volume);

    public IReadOnlyList<NbdExportInfo> ListExports() =>
        [.. Volumes.Select(v => new NbdExportInfo(v.Name, $"volume {v.Name} ({Core.ByteSize.Format(v.Size)}) through the gateway"))];

    public bool TryAttach(string name, [NotNullWhen(true)] out IExportAttachment? attachment, out AttachRefusal refusal, out string? message)
    {
        if (!_volumes.ContainsKey(name) && Refresh is { } refresh)
        {
            try
            {
                refresh().Wait(RefreshWait);
            }
            catch (AggregateException)
            {
                // The gateway is stopping; the name is refused below like any unknown one.
            }
        }

        if (_volumes.TryGetValue(name, out var volume))
        {
            volume.Attach();
            attachment = new Attachment(volume);
            refusal = AttachRefusal.None;
            message = null;
            return true;
        }

        attachment = null;
        refusal = AttachRefusal.UnknownExport;
        message = $"no node reports a volume named '{name}'";
        return false;
    }

    private sealed class Attachment(GatewayVolume volume) : IExportAttachment
    {
        private int _disposed;

        public Core.Devices.IBlockDevice Device => volume;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                volume.Detach();
            }
        }
    }
}

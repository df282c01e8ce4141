using System.Diagnostics.CodeAnalysis;
using Replicator.Core.Devices;
using Replicator.Protocol.Nbd;

namespace Replicator.Protocol.Tests.Nbd.Support;

/// <summary>A catalog of named in-memory exports that counts how many attachments are open.</summary>
internal sealed class TestExportCatalog : INbdExportCatalog
{
    private readonly Dictionary<string, (IBlockDevice Device, string Description)> _exports = [];
    private readonly HashSet<string> _unavailable = [];
    private int _open;

    public int OpenAttachments => Volatile.Read(ref _open);

    public TestExportCatalog Add(string name, IBlockDevice device, string description = "")
    {
        _exports[name] = (device, description);
        return this;
    }

    public TestExportCatalog AddUnavailable(string name, IBlockDevice device)
    {
        _unavailable.Add(name);
        return Add(name, device);
    }

    public IReadOnlyList<NbdExportInfo> ListExports() =>
        [.. _exports.Select(e => new NbdExportInfo(e.Key, e.Value.Description))];

    public bool TryAttach(string name, [NotNullWhen(true)] out IExportAttachment? attachment, out AttachRefusal refusal, out string? message)
    {
        attachment = null;
        message = null;
        if (!_exports.TryGetValue(name, out var export))
        {
            refusal = AttachRefusal.UnknownExport;
            return false;
        }

        if (_unavailable.Contains(name))
        {
            refusal = AttachRefusal.Unavailable;
            message = $"export {name} is resyncing";
            return false;
        }

        refusal = AttachRefusal.None;
        Interlocked.Increment(ref _open);
        attachment = new Attachment(export.Device, this);
        return true;
    }

    private sealed class Attachment(IBlockDevice device, TestExportCatalog owner) : IExportAttachment
    {
        private int _disposed;

        public IBlockDevice Device { get; } = device;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                Interlocked.Decrement(ref owner._open);
            }
        }
    }
}

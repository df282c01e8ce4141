using Replicator.Core.Devices;

namespace Replicator.Protocol.Nbd;

/// <summary>
/// Bounds the connections in the transmission phase on each export of one server
/// (<see cref="NbdServerOptions.MaxConnectionsPerExport"/>). A connection takes a place when NBD_OPT_GO or
/// NBD_OPT_EXPORT_NAME chooses the export and gives it back when its attachment is disposed, at the end of the
/// connection; options that only look at an export (INFO, LIST, META_CONTEXT) take none.
/// </summary>
/// <remarks>Shared by every session of a server; one lock guards the counts, taken once per chosen export.</remarks>
internal sealed class NbdExportConnectionLimit
{
    private readonly Dictionary<string, int> _counts = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    public NbdExportConnectionLimit(int maxPerExport)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPerExport, 1);
        MaxPerExport = maxPerExport;
    }

    public int MaxPerExport { get; }

    /// <summary>Connections holding a place on <paramref name="export"/> now.</summary>
    public int CountOf(string export)
    {
        lock (_lock)
        {
            return _counts.GetValueOrDefault(export);
        }
    }

    /// <summary>
    /// Takes a place on <paramref name="export"/> for <paramref name="attachment"/>: the returned attachment gives it
    /// back when disposed. Null, with <paramref name="attachment"/> left to the caller, when the export is full.
    /// </summary>
    public IExportAttachment? TryEnter(string export, IExportAttachment attachment)
    {
        lock (_lock)
        {
            var count = _counts.GetValueOrDefault(export);
            if (count >= MaxPerExport)
            {
                return null;
            }

            _counts[export] = count + 1;
        }

        return new Place(this, export, attachment);
    }

    /// <summary>The message a client is refused with when the export is full.</summary>
    public string FullMessage(string export) =>
        $"export '{export}' already has {MaxPerExport} connections, the most this server allows on one export";

    private void Exit(string export)
    {
        lock (_lock)
        {
            var count = _counts[export] - 1;
            if (count == 0)
            {
                _counts.Remove(export);
            }
            else
            {
                _counts[export] = count;
            }
        }
    }

    private sealed class Place(NbdExportConnectionLimit owner, string export, IExportAttachment inner) : IExportAttachment
    {
        private int _disposed;

        public IBlockDevice Device => inner.Device;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                inner.Dispose();
                owner.Exit(export);
            }
        }
    }
}

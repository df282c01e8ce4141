using System.Diagnostics.CodeAnalysis;
using Replicator.Core.Devices;

namespace Replicator.Protocol.Nbd;

/// <summary>
/// What an NBD server exports. The node serves its volumes through it, the gateway its
/// failover paths; the NBD session only ever sees names and <see cref="IBlockDevice"/>s.
/// </summary>
public interface INbdExportCatalog
{
    /// <summary>Exports to announce in reply to <c>NBD_OPT_LIST</c>.</summary>
    IReadOnlyList<NbdExportInfo> ListExports();

    /// <summary>
    /// Attaches one client connection to an export. The attachment is disposed when the
    /// connection ends, so the catalog knows which exports are in use.
    /// </summary>
    bool TryAttach(string name, [NotNullWhen(true)] out IExportAttachment? attachment, out AttachRefusal refusal, out string? message);
}

/// <summary>A client connection's hold on an export.</summary>
public interface IExportAttachment : IDisposable
{
    IBlockDevice Device { get; }
}

public sealed record NbdExportInfo(string Name, string Description);

public enum AttachRefusal
{
    None,
    /// <summary>No export by that name (<c>NBD_REP_ERR_UNKNOWN</c>).</summary>
    UnknownExport,
    /// <summary>The export exists but cannot be served now (<c>NBD_REP_ERR_SHUTDOWN</c> or a policy error).</summary>
    Unavailable,
}

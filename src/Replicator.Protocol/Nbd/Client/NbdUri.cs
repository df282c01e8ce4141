using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Sockets;

namespace Replicator.Protocol.Nbd.Client;

/// <summary>
/// Where an NBD export is, written the way qemu and libnbd write it: <c>nbd://host[:port]/export</c> over TCP
/// (port 10809 by default) or <c>nbd+unix:///export?socket=PATH</c> over a Unix socket; <c>nbds</c> and
/// <c>nbds+unix</c> for the same over TLS, which the client then insists on.
/// </summary>
internal sealed record NbdUri(EndPoint EndPoint, string ExportName, bool RequiresTls = false)
{
    public const int DefaultPort = 10809;

    public bool IsUnix => EndPoint is UnixDomainSocketEndPoint;

    /// <summary>The host as written (a name or an address): what the server's TLS certificate must name.</summary>
    public string Host => EndPoint switch
    {
        IPEndPoint ip => ip.Address.ToString(),
        DnsEndPoint dns => dns.Host,
        _ => "localhost",
    };

    public static NbdUri Parse(string text) =>
        TryParse(text, out var uri, out var error) ? uri : throw new FormatException($"'{text}' is not an NBD URI: {error}");

    public static bool TryParse(string text, [NotNullWhen(true)] out NbdUri? uri, [NotNullWhen(false)] out string? error)
    {
        uri = null;
        if (!Uri.TryCreate(text, UriKind.Absolute, out var parsed))
        {
            error = "write it as nbd://host:port/export or nbd+unix:///export?socket=PATH";
            return false;
        }

        var export = Uri.UnescapeDataString(parsed.AbsolutePath.TrimStart('/'));
        switch (parsed.Scheme)
        {
            case "nbd" or "nbds":
                if (parsed.Host.Length == 0)
                {
                    error = "nbd:// needs a host";
                    return false;
                }

                var port = parsed.IsDefaultPort || parsed.Port < 0 ? DefaultPort : parsed.Port;
                EndPoint endPoint = IPAddress.TryParse(parsed.Host.Trim('[', ']'), out var address)
                    ? new IPEndPoint(address, port)
                    : new DnsEndPoint(parsed.Host, port);
                uri = new NbdUri(endPoint, export, parsed.Scheme == "nbds");
                error = null;
                return true;

            case "nbd+unix" or "nbds+unix":
                var socket = SocketParameter(parsed.Query);
                if (string.IsNullOrEmpty(socket))
                {
                    error = "nbd+unix:// needs ?socket=PATH";
                    return false;
                }

                uri = new NbdUri(new UnixDomainSocketEndPoint(socket), export, parsed.Scheme == "nbds+unix");
                error = null;
                return true;

            default:
                error = $"scheme '{parsed.Scheme}' is none of nbd, nbds, nbd+unix and nbds+unix";
                return false;
        }
    }

    /// <summary>The same end point with another export, e.g. <c>nbd://host:port</c> plus a volume name.</summary>
    public NbdUri WithExport(string exportName) => this with { ExportName = exportName };

    public override string ToString() => EndPoint switch
    {
        UnixDomainSocketEndPoint unix => $"{Scheme}+unix:///{Uri.EscapeDataString(ExportName)}?socket={unix}",
        IPEndPoint ip => $"{Scheme}://{ip}/{Uri.EscapeDataString(ExportName)}",
        DnsEndPoint dns => $"{Scheme}://{dns.Host}:{dns.Port}/{Uri.EscapeDataString(ExportName)}",
        _ => EndPoint.ToString() ?? "",
    };

    private string Scheme => RequiresTls ? "nbds" : "nbd";

    private static string? SocketParameter(string query)
    {
        foreach (var part in query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var equals = part.IndexOf('=', StringComparison.Ordinal);
            if (equals > 0 && part[..equals] == "socket")
            {
                return Uri.UnescapeDataString(part[(equals + 1)..]);
            }
        }

        return null;
    }
}

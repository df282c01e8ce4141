using System.Globalization;
using System.Net;
using System.Text.Json.Serialization;
using Replicator.Core.Storage;

namespace Replicator.Node.Configuration;

/// <summary>
/// How an NBD server (a node's, in <c>node.json</c>, or the gateway's, in <c>gateway.json</c>) protects and bounds
/// its exports: the <c>nbd</c> section. See docs/nbd-tls.md.
/// </summary>
internal sealed record NbdConfig
{
    public const string TlsRequire = "require";
    public const string TlsOff = "off";

    /// <summary>
    /// TLS on the TCP end point: <c>require</c> (the default: every client upgrades with NBD_OPT_STARTTLS and shows a
    /// certificate of the cluster's authority) or <c>off</c> (plain TCP, allowed on a loopback address only). The Unix
    /// socket is plain either way, protected by its file mode.
    /// </summary>
    public string Tls { get; init; } = TlsRequire;

    /// <summary>The group the Unix socket is given to (a name or a number), so its members may attach; null keeps the service's own group.</summary>
    public string? SocketGroup { get; init; }

    /// <summary>NBD connections this server holds open at once, on all its end points together.</summary>
    public int MaxConnections { get; init; } = 256;

    /// <summary>NBD connections on one export at once.</summary>
    public int MaxConnectionsPerExport { get; init; } = 64;

    /// <summary>The most either cap may be: each connection may hold 64 MiB of requests.</summary>
    public const int MaxConnectionsLimit = 4096;

    [JsonIgnore]
    public bool RequiresTls => Tls == TlsRequire;

    /// <summary>The URI of the TCP end point <paramref name="listen"/>, without an export: <c>nbds://</c> when it requires TLS.</summary>
    public string TcpUri(string listen) => $"{(RequiresTls ? "nbds" : "nbd")}://{listen}";

    /// <summary>Throws when a setting cannot work, or when <paramref name="listen"/> would serve plain TCP beyond loopback.</summary>
    /// <param name="path">The file, for the message.</param>
    /// <param name="listen">The TCP end point (address:port), or empty for none.</param>
    public void Validate(string path, string listen)
    {
        if (Tls is not (TlsRequire or TlsOff))
        {
            throw new ConfigurationException($"{path}: nbd.tls is '{Tls}'; it is '{TlsRequire}' (the default) or '{TlsOff}'");
        }

        if (MaxConnections is < 1 or > MaxConnectionsLimit)
        {
            throw new ConfigurationException($"{path}: nbd.maxConnections must be between 1 and {MaxConnectionsLimit}");
        }

        if (MaxConnectionsPerExport < 1 || MaxConnectionsPerExport > MaxConnections)
        {
            throw new ConfigurationException($"{path}: nbd.maxConnectionsPerExport must be between 1 and nbd.maxConnections ({MaxConnections})");
        }

        if (SocketGroup is { } group && (group.Length == 0 || group.Length > 64))
        {
            throw new ConfigurationException($"{path}: nbd.socketGroup must name a group, or be left out");
        }

        if (!RequiresTls && listen.Length > 0 && IPEndPoint.TryParse(listen, out var endPoint) && !IPAddress.IsLoopback(endPoint.Address))
        {
            throw new ConfigurationException(
                $"{path}: nbd.tls is '{TlsOff}' but the NBD server would listen on {endPoint}, which is not a loopback address: anyone who reaches it "
                + $"could read and overwrite every volume, and every block would cross the network in clear. Keep nbd.tls '{TlsRequire}' (clients attach "
                + "with the cluster's client certificates, see docs/nbd-tls.md), or listen on a loopback address");
        }
    }

    /// <summary>The id of <see cref="SocketGroup"/>, or null when none is named.</summary>
    /// <exception cref="ConfigurationException">No such group exists.</exception>
    public int? SocketGroupId(string path)
    {
        if (SocketGroup is not { } group)
        {
            return null;
        }

        if (int.TryParse(group, NumberStyles.None, CultureInfo.InvariantCulture, out var id))
        {
            return id;
        }

        return Posix.GroupId(group)
            ?? throw new ConfigurationException($"{path}: nbd.socketGroup '{group}' is not a group of this system (see getent group)");
    }
}

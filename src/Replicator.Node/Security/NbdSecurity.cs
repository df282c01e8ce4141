using System.Net.Security;
using System.Security.Authentication;
using Replicator.Node.Configuration;
using Replicator.Node.Hosting;
using Replicator.Protocol.Nbd;
using Replicator.Protocol.Security;

namespace Replicator.Node.Security;

/// <summary>
/// NBD over TLS with the cluster's certificates (docs/nbd-tls.md): the server options of a node's or the gateway's
/// NBD server, and the client options the gateway dials the nodes with. Both sides check the other's certificate
/// with <see cref="ClusterTrust"/> (the cluster's authority, the cluster, the role, the revocation list), and read
/// their own certificate again at each handshake, so a renewal needs no restart.
/// </summary>
internal static class NbdSecurity
{
    /// <summary>Who may attach to a node's exports: an NBD client (QEMU, libnbd), an administrator's tools, the gateway.</summary>
    public static readonly IReadOnlyList<IdentityRole> NodeClients = [IdentityRole.Client, IdentityRole.Admin, IdentityRole.Gateway];

    /// <summary>Who may attach to the gateway's exports.</summary>
    public static readonly IReadOnlyList<IdentityRole> GatewayClients = [IdentityRole.Client, IdentityRole.Admin];

    /// <summary>
    /// The options of an NBD server set up by <paramref name="config"/>: the caps, the Unix socket's group, and, when
    /// it listens on TCP and <c>nbd.tls</c> is <c>require</c>, TLS with client certificates of <paramref name="clientRoles"/>.
    /// </summary>
    /// <param name="config">The <c>nbd</c> section.</param>
    /// <param name="configPath">The file it came from, for messages.</param>
    /// <param name="listen">The TCP end point, or empty for the Unix socket only.</param>
    /// <param name="credentials">The server's certificate directory, or null when it has none.</param>
    /// <param name="trust">What client certificates are checked against, or null when the server has no certificate.</param>
    /// <returns>The options, given the logger refusals are logged to (checked now, built once the host has its loggers).</returns>
    /// <exception cref="ConfigurationException">TLS is required on TCP and there is no certificate, or the socket's group does not exist.</exception>
    public static Func<ILogger, NbdServerOptions> ServerOptions(
        NbdConfig config, string configPath, string listen, TlsDirectory? credentials, ClusterTrust? trust, IReadOnlyList<IdentityRole> clientRoles)
    {
        var options = new NbdServerOptions
        {
            MaxConnections = config.MaxConnections,
            MaxConnectionsPerExport = config.MaxConnectionsPerExport,
            UnixSocketGroupId = config.SocketGroupId(configPath),
        };
        if (!config.RequiresTls || listen.Length == 0)
        {
            return _ => options;
        }

        if (credentials is null || trust is null || !credentials.Exists)
        {
            throw new ConfigurationException(
                $"{configPath}: the NBD server would listen on {listen} and requires TLS there (nbd.tls '{NbdConfig.TlsRequire}', the default), but it has no certificate"
                + (credentials is null ? "" : $" in {credentials.Path}")
                + ". Give it one from the cluster's authority (replicator cert issue ..., see docs/security.md), serve only the Unix socket (nbdListen \"\"), "
                + $"or, on a loopback address only, allow plain TCP with \"nbd\": {{ \"tls\": \"{NbdConfig.TlsOff}\" }}");
        }

        var refusals = new LogThrottle(10, TimeSpan.FromSeconds(10));
        var requirement = new IdentityRequirement(clientRoles, TlsSide.Client);
        return logger => options with
        {
            TlsMode = NbdTlsMode.Required,
            TlsAuthentication = () =>
            {
                var server = ClusterTlsOptions.ForServer(LoadOwn(credentials), trust, requirement, verdict =>
                {
                    if (!verdict.Trusted && refusals.TryEnter(out var held))
                    {
                        logger.LogWarning("NBD client refused at the TLS handshake: {Problem}{Held}", verdict.Problem, Held(held));
                    }
                });

                // NBD clients may speak TLS 1.2 (the NBD spec asks for 1.2 or later); the links between members use 1.3 only.
                server.EnabledSslProtocols = NbdTls.Protocols;
                return server;
            },
        };
    }

    /// <summary>
    /// The gateway's TLS options to dial node <paramref name="nodeName"/>: its own certificate, and the node's must be a
    /// node certificate of the cluster that names <paramref name="nodeName"/>.
    /// </summary>
    public static Func<string, SslClientAuthenticationOptions> ClientOptions(TlsDirectory credentials, ClusterTrust trust, string nodeName, ILogger logger)
    {
        var requirement = new IdentityRequirement([IdentityRole.Node], TlsSide.Server, nodeName);
        var refusals = new LogThrottle(10, TimeSpan.FromSeconds(10));
        return host => ClusterTlsOptions.ForClient(LoadOwn(credentials), trust, requirement, verdict =>
        {
            if (!verdict.Trusted && refusals.TryEnter(out var held))
            {
                logger.LogWarning("NBD server of node {Node} refused at the TLS handshake: {Problem}{Held}", nodeName, verdict.Problem, Held(held));
            }
        }, host);
    }

    private static TlsMaterial LoadOwn(TlsDirectory credentials)
    {
        try
        {
            return credentials.Load();
        }
        catch (TlsSetupException e)
        {
            throw new AuthenticationException($"this side's certificate cannot be used: {e.Message}", e);
        }
    }

    private static string Held(int held) => held > 0 ? $" ({held} more refusals not logged)" : "";
}

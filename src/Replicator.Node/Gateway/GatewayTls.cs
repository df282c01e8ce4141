using Replicator.Node.Cluster;
using Replicator.Node.Configuration;
using Replicator.Node.Security;
using Replicator.Protocol.Security;

namespace Replicator.Node.Gateway;

/// <summary>
/// The gateway's certificate and what it trusts: the cluster's <c>DIR/tls/gateway</c> (or <c>--tls DIR</c>), in the
/// server layout. It serves the gateway's TCP export over TLS, and the gateway shows it to the nodes when it dials
/// them over TCP, which it does over TLS only (see docs/nbd-tls.md).
/// </summary>
internal sealed record GatewayTls(TlsDirectory Credentials, ClusterTrust Trust)
{
    /// <summary>
    /// Loads the gateway's certificate from <paramref name="tlsDirectory"/> (or, in a cluster directory, its
    /// <c>tls/gateway</c>) and checks that it is a gateway's; null when there is none.
    /// </summary>
    /// <param name="clusterDirectory">A <c>cluster up</c> directory, or null.</param>
    /// <param name="tlsDirectory">The certificate directory given on the command line, or null for the cluster's.</param>
    /// <param name="revocationList">The revocation list, or null for the cluster's (or <c>revoked.json</c> beside the certificate).</param>
    /// <exception cref="ConfigurationException">The certificate cannot be used, or is not a gateway's.</exception>
    public static GatewayTls? Load(string? clusterDirectory, string? tlsDirectory, string? revocationList)
    {
        var path = tlsDirectory is not null ? Path.GetFullPath(tlsDirectory)
            : clusterDirectory is not null ? ClusterLayout.GatewayTlsDirectory(clusterDirectory)
            : null;
        if (path is null)
        {
            return null;
        }

        var credentials = new TlsDirectory(path);
        if (!credentials.Exists)
        {
            return tlsDirectory is null ? null : throw new ConfigurationException($"--tls {path} holds no {TlsDirectory.ServerCertificateFile}: issue the gateway's certificate there (replicator cert issue gateway --ca CA --name gateway --out {path})");
        }

        ClusterIdentity identity;
        try
        {
            identity = credentials.Load().Identity;
        }
        catch (TlsSetupException e)
        {
            throw new ConfigurationException($"the gateway cannot use its certificate: {e.Message}");
        }

        if (identity.Role != IdentityRole.Gateway)
        {
            throw new ConfigurationException($"{credentials.CertificatePath} is the certificate of the {identity}, not of a gateway");
        }

        var revocations = revocationList is not null ? Path.GetFullPath(revocationList)
            : clusterDirectory is not null ? ClusterLayout.RevocationListPath(clusterDirectory)
            : Path.Combine(path, TlsConfig.RevocationFileName);
        return new GatewayTls(credentials, new ClusterTrust(identity.ClusterId, () => credentials.Load().Authorities, new RevocationList(revocations)));
    }

    /// <summary>
    /// Gives each node reached over TCP (or an <c>nbds</c> URI) the TLS options to dial it with; a node on a plain Unix
    /// socket is dialled in clear, protected by the socket's file mode.
    /// </summary>
    /// <returns>The nodes, given the logger a refused node certificate is logged to (checked now, built once the host has its loggers).</returns>
    /// <exception cref="ConfigurationException">A node needs TLS and the gateway has no certificate.</exception>
    public static Func<ILogger, IReadOnlyList<GatewayNode>> Secure(IReadOnlyList<GatewayNode> nodes, GatewayTls? tls)
    {
        var dialled = nodes.Where(n => !n.Nbd.IsUnix || n.Nbd.RequiresTls).ToList();
        if (dialled.Count > 0 && tls is null)
        {
            throw new ConfigurationException(
                $"the gateway reaches node {dialled[0].Name} at {dialled[0].Nbd}, over TCP, which it does with TLS only, and it has no certificate: give it one "
                + "with --tls DIR (replicator cert issue gateway ..., see docs/security.md), or reach the node on its Unix socket (nbd+unix:///?socket=PATH)");
        }

        return logger => [.. nodes.Select(n => dialled.Contains(n) ? n with { Tls = NbdSecurity.ClientOptions(tls!.Credentials, tls.Trust, n.Name, logger) } : n)];
    }
}

using System.Net.Security;
using System.Security.Authentication;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Replicator.Protocol.Security;

namespace Replicator.Node.Security;

/// <summary>
/// HTTPS between members of the cluster with mutual TLS: a Kestrel listener that requires a client
/// certificate of the cluster's authority, and an <see cref="HttpClient"/> that presents the holder's
/// certificate and accepts only a server of a given role. Both check certificates with
/// <see cref="ClusterTrust"/> alone (no system trust store, no host names), TLS 1.3 only.
/// </summary>
internal static class ClusterHttps
{
    /// <summary>How long a connection may take to complete its TLS handshake before the listener drops it.</summary>
    public static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Serves <paramref name="listen"/> over HTTPS with this holder's certificate (read again when the
    /// files change, so a renewal needs no restart), and takes only clients whose certificate
    /// <paramref name="trust"/> accepts for one of <paramref name="clientRoles"/>; a refused client is
    /// reported to <paramref name="onRefused"/> with the reason.
    /// </summary>
    public static void UseClusterTls(this ListenOptions listen, TlsDirectory credentials, ClusterTrust trust, IReadOnlyList<IdentityRole> clientRoles, Action<string> onRefused)
    {
        listen.UseHttps(new HttpsConnectionAdapterOptions
        {
            ServerCertificateSelector = (_, _) => credentials.Load().Certificate,
            ClientCertificateMode = ClientCertificateMode.RequireCertificate,
            ClientCertificateValidation = (certificate, _, _) =>
            {
                var verdict = trust.Check(certificate, new IdentityRequirement(clientRoles, TlsSide.Client));
                if (!verdict.Trusted)
                {
                    onRefused(verdict.Problem!);
                }

                return verdict.Trusted;
            },
            SslProtocols = SslProtocols.Tls13,
            CheckCertificateRevocation = false,
            HandshakeTimeout = HandshakeTimeout,
        });
    }

    /// <summary>
    /// A client of a cluster member's HTTPS API at <paramref name="baseAddress"/>: presents the holder's
    /// certificate (the current one at each new connection) and trusts the server only if
    /// <paramref name="trust"/> accepts its certificate for <paramref name="serverRole"/>; a refused
    /// server is reported to <paramref name="onRefused"/>. Connections are made anew every five minutes,
    /// so a revocation or a renewal reaches a long-lived client too.
    /// </summary>
    public static HttpClient CreateClient(Uri baseAddress, TlsDirectory credentials, ClusterTrust trust, IdentityRole serverRole, TimeSpan timeout, Action<string>? onRefused = null)
    {
        var handler = new SocketsHttpHandler
        {
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            ConnectTimeout = timeout,
            SslOptions = new SslClientAuthenticationOptions
            {
                EnabledSslProtocols = SslProtocols.Tls13,
                AllowTlsResume = false,
                CertificateRevocationCheckMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck,
                LocalCertificateSelectionCallback = (_, _, _, _, _) => credentials.Load().Certificate,
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                {
                    var verdict = trust.Check(certificate, new IdentityRequirement([serverRole], TlsSide.Server));
                    if (!verdict.Trusted)
                    {
                        onRefused?.Invoke(verdict.Problem!);
                    }

                    return verdict.Trusted;
                },
            },
        };
        return new HttpClient(handler) { BaseAddress = baseAddress, Timeout = timeout };
    }
}

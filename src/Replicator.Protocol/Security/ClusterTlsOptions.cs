using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace Replicator.Protocol.Security;

/// <summary>
/// The TLS settings every link of the cluster uses: TLS 1.3 only, both sides present a certificate,
/// and the other side's certificate is checked by <see cref="ClusterTrust"/> alone (the system's
/// trust store and host names play no part: the cluster's authority and the identity decide).
/// </summary>
/// <remarks>
/// Session resumption is off: a resumed session would skip the certificate check, and links are
/// long-lived, so a full handshake per connection costs nothing that matters.
/// </remarks>
internal static class ClusterTlsOptions
{
    /// <summary>For the listening side; <paramref name="onVerdict"/> receives the client's verdict (to log and to learn who it is).</summary>
    public static SslServerAuthenticationOptions ForServer(TlsMaterial own, ClusterTrust trust, IdentityRequirement client, Action<TrustVerdict> onVerdict) => new()
    {
        ServerCertificateContext = own.Context,
        ClientCertificateRequired = true,
        EnabledSslProtocols = SslProtocols.Tls13,
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        AllowTlsResume = false,
        RemoteCertificateValidationCallback = (_, certificate, _, _) => Decide(trust, certificate, client, onVerdict),
    };

    /// <summary>For the dialing side; <paramref name="onVerdict"/> receives the server's verdict.</summary>
    public static SslClientAuthenticationOptions ForClient(TlsMaterial own, ClusterTrust trust, IdentityRequirement server, Action<TrustVerdict> onVerdict, string targetHost) => new()
    {
        TargetHost = targetHost,
        ClientCertificateContext = own.Context,
        EnabledSslProtocols = SslProtocols.Tls13,
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        AllowTlsResume = false,
        RemoteCertificateValidationCallback = (_, certificate, _, _) => Decide(trust, certificate, server, onVerdict),
    };

    private static bool Decide(ClusterTrust trust, X509Certificate? certificate, IdentityRequirement requirement, Action<TrustVerdict> onVerdict)
    {
        var verdict = trust.Check(certificate, requirement);
        onVerdict(verdict);
        return verdict.Trusted;
    }
}

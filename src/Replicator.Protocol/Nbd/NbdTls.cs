using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace Replicator.Protocol.Nbd;

/// <summary>
/// Whether a connection uses TLS (NBD_OPT_STARTTLS). On a server, the NBD spec's modes: NOTLS, SELECTIVETLS where
/// no export is TLS-only, and FORCEDTLS (nbdkit's <c>--tls=off</c>, <c>--tls=on</c>, <c>--tls=require</c>). On a
/// client, libnbd's: never ask, ask and go on in clear if the server says no, or insist.
/// </summary>
internal enum NbdTlsMode
{
    /// <summary>No TLS: a server refuses STARTTLS with NBD_REP_ERR_POLICY; a client never sends it.</summary>
    Off,
    /// <summary>A server upgrades a client that sends STARTTLS and serves the others in clear; a client asks and goes on in clear if refused.</summary>
    Optional,
    /// <summary>
    /// A server answers every option but STARTTLS and ABORT with NBD_REP_ERR_TLS_REQD until TLS is up; a client sends
    /// STARTTLS first and gives up if the server refuses.
    /// </summary>
    Required,
}

/// <summary>
/// TLS settings for NBD built from X.509 certificates, and the certificate directories of the NBD tools (libnbd's
/// <c>tls-certificates</c> and QEMU's <c>tls-creds-x509</c>): <c>ca-cert.pem</c> with <c>client-cert.pem</c> and
/// <c>client-key.pem</c> for a client, <c>server-cert.pem</c> and <c>server-key.pem</c> for a server.
/// </summary>
/// <remarks>
/// TLS 1.2 and 1.3 only, as the spec asks. Certificates are checked against the given authorities alone, never the
/// system's store, so only certificates of the cluster's CA are accepted. <see cref="Server"/> and <see cref="Client"/>
/// consult no revocation list; the node and the gateway build their options with the cluster's trust instead
/// (Replicator.Node's <c>NbdSecurity</c>), which checks the role and the cluster's revocation list too.
/// </remarks>
internal static class NbdTls
{
    public const string CaCertificateFile = "ca-cert.pem";
    public const string ClientCertificateFile = "client-cert.pem";
    public const string ClientKeyFile = "client-key.pem";
    public const string ServerCertificateFile = "server-cert.pem";
    public const string ServerKeyFile = "server-key.pem";

    public const SslProtocols Protocols = SslProtocols.Tls12 | SslProtocols.Tls13;

    /// <summary>
    /// Builds the server's options for each connection. With <paramref name="clientAuthorities"/>, every client must
    /// show a certificate issued by one of them (mutual TLS); without, any client may encrypt.
    /// </summary>
    /// <param name="certificate">This server's certificate, with its private key.</param>
    /// <param name="clientAuthorities">The CAs whose client certificates are accepted, or null to ask for none.</param>
    public static Func<SslServerAuthenticationOptions> Server(X509Certificate2 certificate, X509Certificate2Collection? clientAuthorities)
    {
        if (!certificate.HasPrivateKey)
        {
            throw new ArgumentException($"the NBD server certificate {certificate.Subject} has no private key", nameof(certificate));
        }

        var context = SslStreamCertificateContext.Create(certificate, additionalCertificates: null, offline: true);
        return () => new SslServerAuthenticationOptions
        {
            ServerCertificateContext = context,
            EnabledSslProtocols = Protocols,
            ClientCertificateRequired = clientAuthorities is not null,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            CertificateChainPolicy = clientAuthorities is null ? null : TrustOnly(clientAuthorities),
        };
    }

    /// <summary>
    /// The client's options: the server's certificate must be issued by one of <paramref name="authorities"/> and name
    /// <paramref name="targetHost"/> (a host name or an IP address); <paramref name="clientCertificate"/>, if any, is
    /// shown to a server that asks for one.
    /// </summary>
    public static SslClientAuthenticationOptions Client(string targetHost, X509Certificate2Collection authorities, X509Certificate2? clientCertificate)
    {
        if (clientCertificate is { HasPrivateKey: false })
        {
            throw new ArgumentException($"the NBD client certificate {clientCertificate.Subject} has no private key", nameof(clientCertificate));
        }

        return new SslClientAuthenticationOptions
        {
            TargetHost = targetHost,
            EnabledSslProtocols = Protocols,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            CertificateChainPolicy = TrustOnly(authorities),
            ClientCertificateContext = clientCertificate is null
                ? null
                : SslStreamCertificateContext.Create(clientCertificate, additionalCertificates: null, offline: true),
        };
    }

    /// <summary>
    /// The client side of a certificate directory in the layout of libnbd and QEMU: the CA certificates, and the
    /// client's certificate and key when both files are there.
    /// </summary>
    /// <exception cref="IOException">The directory lacks <c>ca-cert.pem</c>, or holds only one of the client's two files.</exception>
    public static (X509Certificate2Collection Authorities, X509Certificate2? Certificate) LoadClientDirectory(string directory)
    {
        var authorities = LoadAuthorities(directory);
        var certificate = LoadPair(directory, ClientCertificateFile, ClientKeyFile, required: false);
        return (authorities, certificate);
    }

    /// <summary>The server side of a certificate directory (nbdkit's and QEMU's layout): the server's certificate and the CA certificates.</summary>
    /// <exception cref="IOException">A file is missing.</exception>
    public static (X509Certificate2 Certificate, X509Certificate2Collection Authorities) LoadServerDirectory(string directory) =>
        (LoadPair(directory, ServerCertificateFile, ServerKeyFile, required: true)!, LoadAuthorities(directory));

    private static X509Certificate2Collection LoadAuthorities(string directory)
    {
        var path = Path.Combine(directory, CaCertificateFile);
        if (!File.Exists(path))
        {
            throw new IOException($"the TLS certificate directory {directory} has no {CaCertificateFile}");
        }

        var authorities = new X509Certificate2Collection();
        authorities.ImportFromPemFile(path);
        if (authorities.Count == 0)
        {
            throw new IOException($"{path} holds no certificate");
        }

        return authorities;
    }

    private static X509Certificate2? LoadPair(string directory, string certificateFile, string keyFile, bool required)
    {
        var certificatePath = Path.Combine(directory, certificateFile);
        var keyPath = Path.Combine(directory, keyFile);
        var haveCertificate = File.Exists(certificatePath);
        var haveKey = File.Exists(keyPath);
        if (!haveCertificate && !haveKey && !required)
        {
            return null;
        }

        if (!haveCertificate || !haveKey)
        {
            throw new IOException($"the TLS certificate directory {directory} needs both {certificateFile} and {keyFile}");
        }

        return X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
    }

    /// <summary>A chain policy that trusts <paramref name="authorities"/> and nothing else; a new one per use, since a chain may change it.</summary>
    private static X509ChainPolicy TrustOnly(X509Certificate2Collection authorities)
    {
        var policy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            RevocationMode = X509RevocationMode.NoCheck,
        };
        policy.CustomTrustStore.AddRange(authorities);
        return policy;
    }
}

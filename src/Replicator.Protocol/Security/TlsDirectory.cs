using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Replicator.Protocol.Security;

/// <summary>
/// One holder's TLS files in one directory, in the layout QEMU, libnbd and nbdkit read
/// (<c>--tls-certificates DIR</c>, <c>tls-creds-x509,dir=DIR</c>):
/// <list type="bullet">
/// <item><c>ca-cert.pem</c>: the cluster's authority (several, while moving to a new one);</item>
/// <item><c>server-cert.pem</c> and <c>server-key.pem</c> for a role that listens (node, witness,
/// gateway; the same certificate serves when it dials);</item>
/// <item><c>client-cert.pem</c> and <c>client-key.pem</c> for a client only (an administrator, an NBD client).</item>
/// </list>
/// </summary>
/// <remarks>
/// Files are read again when one of them changes, so a renewed
/// certificate is used from the next handshake on, without a restart; the connections already up
/// keep the certificate they were made with. A key readable by other users is refused.
/// </remarks>
internal sealed class TlsDirectory
{
    public const string AuthorityFile = "ca-cert.pem";
    public const string AuthorityKeyFile = "ca-key.pem";
    public const string ServerCertificateFile = "server-cert.pem";
    public const string ServerKeyFile = "server-key.pem";
    public const string ClientCertificateFile = "client-cert.pem";
    public const string ClientKeyFile = "client-key.pem";

    private readonly Lock _lock = new();
    private string? _version;
    private TlsMaterial? _material;

    public TlsDirectory(string path, bool client = false)
    {
        Path = System.IO.Path.GetFullPath(path);
        IsClient = client;
    }

    public string Path { get; }

    /// <summary>Whether this is a client-only directory (<c>client-*.pem</c>) rather than a server's.</summary>
    public bool IsClient { get; }

    public string AuthorityPath => System.IO.Path.Combine(Path, AuthorityFile);

    public string CertificatePath => System.IO.Path.Combine(Path, IsClient ? ClientCertificateFile : ServerCertificateFile);

    public string KeyPath => System.IO.Path.Combine(Path, IsClient ? ClientKeyFile : ServerKeyFile);

    /// <summary>Whether the directory holds a certificate at all.</summary>
    public bool Exists => File.Exists(CertificatePath);

    /// <summary>The files as they are now, read again if one changed since the last call.</summary>
    /// <exception cref="TlsSetupException">A file is missing, unreadable, malformed, or the certificate does not match its key or its authority.</exception>
    public TlsMaterial Load()
    {
        lock (_lock)
        {
            var version = VersionOf();
            if (_material is not null && version == _version)
            {
                return _material;
            }

            _material = Read();
            _version = version;
            return _material;
        }
    }

    /// <summary>Writes a holder's files: its certificate and key, and the authorities it trusts.</summary>
    public static void Write(string directory, bool client, X509Certificate2 certificate, X509Certificate2Collection authorities)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        using var key = certificate.GetECDsaPrivateKey() ?? throw new ArgumentException("The certificate has no ECDSA private key.", nameof(certificate));
        SecureFiles.CreatePrivateDirectory(directory);
        var layout = new TlsDirectory(directory, client);
        SecureFiles.WriteAtomically(layout.AuthorityPath, System.Text.Encoding.ASCII.GetBytes(string.Concat(authorities.Select(a => a.ExportCertificatePem() + "\n"))), SecureFiles.PublicFileMode);
        SecureFiles.WriteAtomically(layout.KeyPath, System.Text.Encoding.ASCII.GetBytes(key.ExportPkcs8PrivateKeyPem() + "\n"), SecureFiles.PrivateFileMode);
        SecureFiles.WriteAtomically(layout.CertificatePath, System.Text.Encoding.ASCII.GetBytes(certificate.ExportCertificatePem() + "\n"), SecureFiles.PublicFileMode);
    }

    /// <summary>
    /// The three files' bytes (a few KiB): what decides whether to read them again. Their contents rather
    /// than their times, since a renewal within one tick of the file system's clock would go unseen.
    /// </summary>
    private string VersionOf() =>
        string.Concat(new[] { AuthorityPath, CertificatePath, KeyPath }.Select(p => File.Exists(p) ? Convert.ToBase64String(File.ReadAllBytes(p)) + "|" : "-|"));

    private TlsMaterial Read()
    {
        foreach (var file in new[] { AuthorityPath, CertificatePath, KeyPath })
        {
            if (!File.Exists(file))
            {
                throw new TlsSetupException($"{file} is missing: {Path} needs {AuthorityFile}, {System.IO.Path.GetFileName(CertificatePath)} and {System.IO.Path.GetFileName(KeyPath)} "
                    + "(issue them with 'replicator cert issue', see docs/security.md)");
            }
        }

        SecureFiles.RequirePrivate(KeyPath);
        var authorities = new X509Certificate2Collection();
        X509Certificate2 certificate;
        try
        {
            authorities.ImportFromPemFile(AuthorityPath);
            certificate = X509Certificate2.CreateFromPemFile(CertificatePath, KeyPath);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException or IOException or UnauthorizedAccessException)
        {
            throw new TlsSetupException($"the TLS files in {Path} cannot be used: {e.Message}", e);
        }

        if (authorities.Count == 0)
        {
            throw new TlsSetupException($"{AuthorityPath} holds no certificate");
        }

        if (!ClusterIdentity.TryRead(certificate, out var identity, out var problem))
        {
            throw new TlsSetupException($"{CertificatePath} is not a Replicator identity: {problem}");
        }

        var trust = new ClusterTrust(identity!.ClusterId, () => authorities, RevocationList.None);
        var verdict = trust.Check(certificate, new IdentityRequirement([identity.Role], IsClient ? TlsSide.Client : TlsSide.Server));
        if (!verdict.Trusted)
        {
            throw new TlsSetupException($"{CertificatePath} cannot be used with {AuthorityPath}: {verdict.Problem}");
        }

        var context = SslStreamCertificateContext.Create(certificate, additionalCertificates: null, offline: true);
        return new TlsMaterial(certificate, authorities, identity, context);
    }
}

/// <summary>A holder's TLS identity as loaded: its certificate with the key, the authorities it trusts, and who it is.</summary>
internal sealed record TlsMaterial(X509Certificate2 Certificate, X509Certificate2Collection Authorities, ClusterIdentity Identity, SslStreamCertificateContext Context)
{
    public string Serial => CertificateIssuer.SerialOf(Certificate);
}

using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Replicator.Node.Configuration;
using Replicator.Protocol.Security;

namespace Replicator.Node.Security;

/// <summary>
/// The cluster's certificate authority on disk: <c>ca-cert.pem</c> (public, copied to every host) and
/// <c>ca-key.pem</c> (0600, in a 0700 directory; needed only to issue, so it can live offline), and
/// the holder directories it issues (see <see cref="TlsDirectory"/> for their layout).
/// </summary>
internal sealed class ClusterAuthority : IDisposable
{
    private ClusterAuthority(string directory, X509Certificate2 certificate, Guid clusterId)
    {
        Directory = directory;
        Certificate = certificate;
        ClusterId = clusterId;
    }

    public string Directory { get; }

    public X509Certificate2 Certificate { get; }

    public Guid ClusterId { get; }

    public static string CertificatePath(string directory) => Path.Combine(directory, TlsDirectory.AuthorityFile);

    public static string KeyPath(string directory) => Path.Combine(directory, TlsDirectory.AuthorityKeyFile);

    public static bool Exists(string directory) => File.Exists(KeyPath(directory));

    /// <summary>Creates a new authority for <paramref name="clusterId"/> in <paramref name="directory"/>.</summary>
    /// <exception cref="ConfigurationException">An authority is there already: it is never overwritten (every certificate of the cluster hangs on it).</exception>
    public static ClusterAuthority Create(string directory, Guid clusterId, TimeSpan? lifetime = null)
    {
        directory = Path.GetFullPath(directory);
        if (File.Exists(CertificatePath(directory)) || Exists(directory))
        {
            throw new ConfigurationException($"{directory} holds an authority already; it is never overwritten (every certificate of its cluster depends on it)");
        }

        var start = DateTimeOffset.UtcNow - CertificateIssuer.ClockSkew;
        var certificate = CertificateIssuer.CreateAuthority(clusterId, start, start + (lifetime ?? CertificateIssuer.DefaultAuthorityLifetime));
        using var key = certificate.GetECDsaPrivateKey()!;
        SecureFiles.CreatePrivateDirectory(directory);
        SecureFiles.WriteAtomically(KeyPath(directory), System.Text.Encoding.ASCII.GetBytes(key.ExportPkcs8PrivateKeyPem() + "\n"), SecureFiles.PrivateFileMode);
        SecureFiles.WriteAtomically(CertificatePath(directory), System.Text.Encoding.ASCII.GetBytes(certificate.ExportCertificatePem() + "\n"), SecureFiles.PublicFileMode);
        return new ClusterAuthority(directory, certificate, clusterId);
    }

    /// <summary>Opens the authority in <paramref name="directory"/>, with its key.</summary>
    /// <exception cref="ConfigurationException">It is missing, unreadable, open to other users, or not an authority of a Replicator cluster.</exception>
    public static ClusterAuthority Open(string directory)
    {
        directory = Path.GetFullPath(directory);
        if (!Exists(directory) || !File.Exists(CertificatePath(directory)))
        {
            throw new ConfigurationException($"{directory} holds no authority ({TlsDirectory.AuthorityFile} and {TlsDirectory.AuthorityKeyFile}); create one with 'replicator cert ca --out {directory}'");
        }

        try
        {
            SecureFiles.RequirePrivate(KeyPath(directory));
            var certificate = X509Certificate2.CreateFromPemFile(CertificatePath(directory), KeyPath(directory));
            var cluster = ClusterIdentity.ClusterOfAuthority(certificate)
                ?? throw new ConfigurationException($"{CertificatePath(directory)} is not the authority of a Replicator cluster (it names no cluster)");
            return new ClusterAuthority(directory, certificate, cluster);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException or IOException or TlsSetupException)
        {
            throw new ConfigurationException($"the authority in {directory} cannot be used: {e.Message}");
        }
    }

    /// <summary>
    /// Issues a certificate for <paramref name="identity"/> into the holder directory <paramref name="directory"/>
    /// (client layout for administrators and NBD clients, server layout for the others), trusting this
    /// authority and any already in the directory's <c>ca-cert.pem</c>. Returns the new certificate.
    /// </summary>
    public X509Certificate2 IssueInto(string directory, ClusterIdentity identity, IEnumerable<string>? dnsNames = null, IEnumerable<IPAddress>? addresses = null, TimeSpan? lifetime = null)
    {
        var start = DateTimeOffset.UtcNow - CertificateIssuer.ClockSkew;
        var certificate = CertificateIssuer.Issue(Certificate, identity, dnsNames, addresses, start, start + (lifetime ?? CertificateIssuer.DefaultLeafLifetime));
        var client = !CertificateIssuer.ServesTls(identity.Role);
        var trusted = new X509Certificate2Collection { X509CertificateLoader.LoadCertificate(Certificate.RawData) };
        var existing = new TlsDirectory(directory, client).AuthorityPath;
        if (File.Exists(existing))
        {
            var already = new X509Certificate2Collection();
            already.ImportFromPemFile(existing);
            trusted.AddRange(already.Where(a => a.Thumbprint != Certificate.Thumbprint).ToArray());
        }

        TlsDirectory.Write(directory, client, certificate, trusted);
        return certificate;
    }

    public void Dispose() => Certificate.Dispose();
}

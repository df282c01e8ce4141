using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Replicator.Protocol.Nbd;

namespace Replicator.Protocol.Tests.Nbd.Support;

/// <summary>
/// A certificate authority made for a test, with a server certificate for localhost (127.0.0.1, ::1) and a client
/// certificate, ECDSA P-256 and valid for a day around now. <see cref="Cluster"/> and <see cref="Stranger"/> are two
/// unrelated authorities, made once per test process.
/// </summary>
internal sealed class TestCertificates
{
    private static readonly Lazy<TestCertificates> LazyCluster = new(() => new TestCertificates("cluster"));
    private static readonly Lazy<TestCertificates> LazyStranger = new(() => new TestCertificates("stranger"));

    private TestCertificates(string name)
    {
        using var authorityKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name} test CA", authorityKey, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        Authority = request.CreateSelfSigned(now.AddHours(-1), now.AddDays(1));
        Server = Issue($"CN={name} nbd server", "1.3.6.1.5.5.7.3.1", server: true);
        Client = Issue($"CN={name} nbd client", "1.3.6.1.5.5.7.3.2", server: false);
    }

    public static TestCertificates Cluster => LazyCluster.Value;

    public static TestCertificates Stranger => LazyStranger.Value;

    /// <summary>The CA's certificate, with its private key.</summary>
    public X509Certificate2 Authority { get; }

    public X509Certificate2 Server { get; }

    public X509Certificate2 Client { get; }

    public X509Certificate2Collection Authorities => [X509CertificateLoader.LoadCertificate(Authority.RawData)];

    /// <summary>The server's TLS options; with <paramref name="requireClientCertificates"/>, only this CA's clients get in.</summary>
    public Func<SslServerAuthenticationOptions> ServerAuthentication(bool requireClientCertificates = true) =>
        NbdTls.Server(Server, requireClientCertificates ? Authorities : null);

    /// <summary>A client's TLS options trusting this CA; showing <paramref name="certificate"/> (by default this CA's client certificate).</summary>
    public Func<string, SslClientAuthenticationOptions> ClientAuthentication(X509Certificate2? certificate = null, bool withCertificate = true) =>
        host => NbdTls.Client(host, Authorities, withCertificate ? certificate ?? Client : null);

    /// <summary>Writes the client's certificate directory as libnbd and QEMU read it; the key readable by its owner only.</summary>
    public string WriteClientDirectory(string directory, X509Certificate2? certificate = null)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, NbdTls.CaCertificateFile), Authority.ExportCertificatePem());
        WritePair(directory, certificate ?? Client, NbdTls.ClientCertificateFile, NbdTls.ClientKeyFile);
        return directory;
    }

    /// <summary>Writes the server's certificate directory (nbdkit's and QEMU's layout).</summary>
    public string WriteServerDirectory(string directory)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, NbdTls.CaCertificateFile), Authority.ExportCertificatePem());
        WritePair(directory, Server, NbdTls.ServerCertificateFile, NbdTls.ServerKeyFile);
        return directory;
    }

    private static void WritePair(string directory, X509Certificate2 certificate, string certificateFile, string keyFile)
    {
        File.WriteAllText(Path.Combine(directory, certificateFile), certificate.ExportCertificatePem());
        var keyPath = Path.Combine(directory, keyFile);
        File.WriteAllText(keyPath, "");
        File.SetUnixFileMode(keyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        using var key = certificate.GetECDsaPrivateKey()!;
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
    }

    private X509Certificate2 Issue(string subject, string usage, bool server)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(usage)], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Authority, true, false));
        if (server)
        {
            var names = new SubjectAlternativeNameBuilder();
            names.AddDnsName("localhost");
            names.AddIpAddress(IPAddress.Loopback);
            names.AddIpAddress(IPAddress.IPv6Loopback);
            request.CertificateExtensions.Add(names.Build());
        }

        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7f;
        using var issued = request.Create(Authority, Authority.NotBefore, Authority.NotAfter, serial);
        return issued.CopyWithPrivateKey(key);
    }
}

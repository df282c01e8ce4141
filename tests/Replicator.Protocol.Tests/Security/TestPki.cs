using System.Security.Cryptography.X509Certificates;
using Replicator.Protocol.Security;

namespace Replicator.Protocol.Tests.Security;

/// <summary>A cluster authority made for one test, with helpers to issue certificates and write them out, in a temporary directory.</summary>
internal sealed class TestPki : IDisposable
{
    public TestPki(Guid? clusterId = null)
    {
        ClusterId = clusterId ?? Guid.NewGuid();
        Authority = CertificateIssuer.CreateAuthority(ClusterId, DateTimeOffset.UtcNow.AddYears(-1));
        Directory = System.IO.Directory.CreateTempSubdirectory("replicator-pki-").FullName;
    }

    public Guid ClusterId { get; }

    public X509Certificate2 Authority { get; }

    public string Directory { get; }

    public X509Certificate2Collection Authorities => [X509CertificateLoader.LoadCertificate(Authority.RawData)];

    public ClusterIdentity Identity(IdentityRole role, string name, Guid? id = null) => new(role, name, id ?? Guid.NewGuid(), ClusterId);

    public X509Certificate2 Issue(ClusterIdentity identity, DateTimeOffset? notBefore = null, DateTimeOffset? notAfter = null) =>
        CertificateIssuer.Issue(Authority, identity, notBefore: notBefore, notAfter: notAfter);

    public X509Certificate2 Issue(IdentityRole role, string name, Guid? id = null) => Issue(Identity(role, name, id));

    /// <summary>Writes a holder's directory (server layout unless <paramref name="client"/>) and returns it.</summary>
    public TlsDirectory Write(string subdirectory, X509Certificate2 certificate, bool client = false)
    {
        var path = Path.Combine(Directory, subdirectory);
        TlsDirectory.Write(path, client, certificate, Authorities);
        return new TlsDirectory(path, client);
    }

    public ClusterTrust Trust(RevocationList? revocations = null) => new(ClusterId, () => Authorities, revocations ?? RevocationList.None);

    public void Dispose()
    {
        Authority.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

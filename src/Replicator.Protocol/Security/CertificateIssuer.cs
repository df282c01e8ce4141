using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Replicator.Protocol.Security;

/// <summary>
/// Makes the cluster's certificates with the BCL alone (<see cref="CertificateRequest"/>, ECDSA
/// P-256 with SHA-256): the cluster authority, and one certificate per node, witness, gateway,
/// administrator or NBD client that binds its name, id and role (see <see cref="ClusterIdentity"/>).
/// </summary>
/// <remarks>
/// The authority is self-signed, may sign leaf certificates only (path length 0), and names the
/// cluster. A leaf has a fresh key, a random 128-bit serial number (what a revocation names),
/// key usage digital signature only, and the extended key usages of its role. Validity starts five
/// minutes in the past, so a host whose clock is a little behind accepts a certificate made on
/// another at once.
/// </remarks>
internal static class CertificateIssuer
{
    public static readonly TimeSpan ClockSkew = TimeSpan.FromMinutes(5);
    public static readonly TimeSpan DefaultAuthorityLifetime = TimeSpan.FromDays(3650);
    public static readonly TimeSpan DefaultLeafLifetime = TimeSpan.FromDays(825);

    /// <summary>TLS web server authentication (1.3.6.1.5.5.7.3.1).</summary>
    public const string ServerAuthOid = "1.3.6.1.5.5.7.3.1";

    /// <summary>TLS web client authentication (1.3.6.1.5.5.7.3.2).</summary>
    public const string ClientAuthOid = "1.3.6.1.5.5.7.3.2";

    /// <summary>A new authority for <paramref name="clusterId"/>, with its private key.</summary>
    public static X509Certificate2 CreateAuthority(Guid clusterId, DateTimeOffset? notBefore = null, DateTimeOffset? notAfter = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN=Replicator cluster CA, O=Replicator, OU={clusterId}"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: true, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        var names = new SubjectAlternativeNameBuilder();
        names.AddUri(ClusterIdentity.ClusterUriOf(clusterId));
        request.CertificateExtensions.Add(names.Build());
        var start = notBefore ?? DateTimeOffset.UtcNow - ClockSkew;
        return request.CreateSelfSigned(start, notAfter ?? start + DefaultAuthorityLifetime);
    }

    /// <summary>
    /// A certificate for <paramref name="identity"/>, signed by <paramref name="authority"/> (which
    /// must hold its private key), with a new private key.
    /// </summary>
    /// <param name="dnsNames">Host names clients may reach the holder by (checked by NBD clients such as QEMU and libnbd).</param>
    /// <param name="addresses">IP addresses clients may reach the holder by.</param>
    /// <exception cref="ArgumentException">The identity's cluster is not the authority's, or its name is empty or too long.</exception>
    public static X509Certificate2 Issue(
        X509Certificate2 authority,
        ClusterIdentity identity,
        IEnumerable<string>? dnsNames = null,
        IEnumerable<IPAddress>? addresses = null,
        DateTimeOffset? notBefore = null,
        DateTimeOffset? notAfter = null)
    {
        ArgumentNullException.ThrowIfNull(authority);
        ArgumentNullException.ThrowIfNull(identity);
        if (!authority.HasPrivateKey)
        {
            throw new ArgumentException("The authority's private key is needed to issue a certificate.", nameof(authority));
        }

        if (ClusterIdentity.ClusterOfAuthority(authority) is { } cluster && cluster != identity.ClusterId)
        {
            throw new ArgumentException($"The authority belongs to cluster {cluster}, not to cluster {identity.ClusterId}.", nameof(identity));
        }

        if (string.IsNullOrWhiteSpace(identity.Name) || identity.Name.Length > ClusterIdentity.MaxNameLength || identity.Name.Contains(',', StringComparison.Ordinal)
            || identity.Name.Contains('=', StringComparison.Ordinal) || identity.Name.Contains('+', StringComparison.Ordinal))
        {
            throw new ArgumentException($"'{identity.Name}' is not a usable name: 1 to {ClusterIdentity.MaxNameLength} characters, without ',', '=' or '+'.", nameof(identity));
        }

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var subject = new X500DistinguishedName($"CN={identity.Name}, O=Replicator, OU={identity.RoleName}");
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: false, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(UsagesOf(identity.Role), critical: false));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(authority, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        var names = new SubjectAlternativeNameBuilder();
        names.AddUri(identity.RoleUri);
        names.AddUri(identity.ClusterUri);
        foreach (var dns in dnsNames ?? [])
        {
            names.AddDnsName(dns);
        }

        foreach (var address in addresses ?? [])
        {
            names.AddIpAddress(address);
        }

        request.CertificateExtensions.Add(names.Build());
        var start = notBefore ?? DateTimeOffset.UtcNow - ClockSkew;
        var end = notAfter ?? start + DefaultLeafLifetime;
        if (end > authority.NotAfter)
        {
            end = authority.NotAfter;
        }

        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F;
        serial[0] |= 0x01;
        using var signed = request.Create(authority, start, end, serial);
        return signed.CopyWithPrivateKey(key);
    }

    /// <summary>Whether a role's certificate is for a listening side too (server authentication), not only a client.</summary>
    public static bool ServesTls(IdentityRole role) => role is IdentityRole.Node or IdentityRole.Witness or IdentityRole.Gateway;

    /// <summary>A certificate's serial number as the revocation list and the CLI write it: upper-case hex, no separators.</summary>
    public static string SerialOf(X509Certificate2 certificate) => certificate.SerialNumber.ToUpperInvariant();

    private static OidCollection UsagesOf(IdentityRole role)
    {
        var usages = new OidCollection();
        if (ServesTls(role))
        {
            usages.Add(new Oid(ServerAuthOid));
        }

        usages.Add(new Oid(ClientAuthOid));
        return usages;
    }
}

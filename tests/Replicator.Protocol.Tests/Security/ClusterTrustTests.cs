using System.Net;
using System.Security.Cryptography.X509Certificates;
using Replicator.Protocol.Security;

namespace Replicator.Protocol.Tests.Security;

/// <summary>The rules that decide whether a presented certificate proves a member of the cluster, one per test.</summary>
public sealed class ClusterTrustTests : IDisposable
{
    private static readonly Guid NodeB = Guid.Parse("b0000000-0000-4000-8000-00000000000b");
    private readonly TestPki _pki = new();

    [Fact]
    public void A_node_certificate_of_the_cluster_proves_its_role_name_id_and_cluster()
    {
        using var certificate = CertificateIssuer.Issue(_pki.Authority, _pki.Identity(IdentityRole.Node, "b", NodeB), ["b.example"], [IPAddress.Parse("10.0.0.2")]);

        var verdict = _pki.Trust().Check(certificate, IdentityRequirement.Node(TlsSide.Client, "b", NodeB));

        Assert.True(verdict.Trusted, verdict.Problem);
        Assert.Equal(new ClusterIdentity(IdentityRole.Node, "b", NodeB, _pki.ClusterId), verdict.Identity);
        Assert.Equal(CertificateIssuer.SerialOf(certificate), verdict.Serial);
        Assert.True(_pki.Trust().Check(certificate, IdentityRequirement.Node(TlsSide.Server, "b", NodeB)).Trusted, "a node certificate serves both sides of the peer link");
    }

    [Fact]
    public void A_certificate_of_another_authority_is_refused_naming_both_authorities()
    {
        using var other = new TestPki(_pki.ClusterId);
        using var certificate = other.Issue(IdentityRole.Node, "b", NodeB);

        var verdict = _pki.Trust().Check(certificate, IdentityRequirement.Node(TlsSide.Client, "b", NodeB));

        Assert.False(verdict.Trusted);
        Assert.Contains("is not issued by this cluster's authority", verdict.Problem, StringComparison.Ordinal);
        Assert.Contains(certificate.Issuer, verdict.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void A_self_signed_certificate_carrying_the_right_names_is_refused()
    {
        using var impostor = new TestPki(_pki.ClusterId);

        var verdict = _pki.Trust().Check(impostor.Authority, new IdentityRequirement([IdentityRole.Node], TlsSide.Client));

        Assert.False(verdict.Trusted);
        Assert.Contains("is not issued by this cluster's authority", verdict.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void An_expired_certificate_is_refused_with_its_dates()
    {
        var expiredAt = DateTimeOffset.UtcNow.AddDays(-1);
        using var certificate = _pki.Issue(_pki.Identity(IdentityRole.Node, "b", NodeB), expiredAt.AddDays(-30), expiredAt);

        var verdict = _pki.Trust().Check(certificate, IdentityRequirement.Node(TlsSide.Client, "b", NodeB));

        Assert.False(verdict.Trusted);
        Assert.Contains("is not valid now", verdict.Problem, StringComparison.Ordinal);
        Assert.Contains("expired", verdict.Problem, StringComparison.Ordinal);
        Assert.Contains($"{expiredAt.UtcDateTime:yyyy-MM-dd}", verdict.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void A_certificate_not_yet_valid_is_refused()
    {
        using var certificate = _pki.Issue(_pki.Identity(IdentityRole.Node, "b", NodeB), DateTimeOffset.UtcNow.AddDays(1), DateTimeOffset.UtcNow.AddDays(30));

        var verdict = _pki.Trust().Check(certificate, IdentityRequirement.Node(TlsSide.Client, "b", NodeB));

        Assert.False(verdict.Trusted);
        Assert.Contains("is not valid now", verdict.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void A_node_certificate_with_another_id_than_the_configured_peer_is_refused()
    {
        var impostorId = Guid.NewGuid();
        using var certificate = _pki.Issue(IdentityRole.Node, "b", impostorId);

        var verdict = _pki.Trust().Check(certificate, IdentityRequirement.Node(TlsSide.Client, "b", NodeB));

        Assert.False(verdict.Trusted);
        Assert.Contains($"names the node 'b' ({impostorId}), but the configured peer is the node 'b' ({NodeB})", verdict.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void A_node_certificate_with_another_name_than_the_configured_peer_is_refused()
    {
        using var certificate = _pki.Issue(IdentityRole.Node, "c", NodeB);

        var verdict = _pki.Trust().Check(certificate, IdentityRequirement.Node(TlsSide.Client, "b", NodeB));

        Assert.False(verdict.Trusted);
        Assert.Contains("names the node 'c'", verdict.Problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("witness")]
    [InlineData("gateway")]
    [InlineData("admin")]
    [InlineData("client")]
    public void A_certificate_of_another_role_does_not_pass_for_a_node(string roleName)
    {
        Assert.True(ClusterIdentity.TryParseRole(roleName, out var role));
        using var certificate = _pki.Issue(role, "b", NodeB);

        var verdict = _pki.Trust().Check(certificate, IdentityRequirement.Node(TlsSide.Client, "b", NodeB));

        Assert.False(verdict.Trusted);
        Assert.Contains($"is the {ClusterIdentity.RoleText(role)} 'b'", verdict.Problem, StringComparison.Ordinal);
        Assert.Contains("but a node 'b'", verdict.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void A_client_only_certificate_cannot_serve_the_listening_side()
    {
        using var certificate = _pki.Issue(IdentityRole.Admin, "ops");

        var verdict = _pki.Trust().Check(certificate, new IdentityRequirement([IdentityRole.Admin], TlsSide.Server));

        Assert.False(verdict.Trusted);
        Assert.Contains("does not allow TLS server authentication", verdict.Problem, StringComparison.Ordinal);
        Assert.True(_pki.Trust().Check(certificate, new IdentityRequirement([IdentityRole.Admin], TlsSide.Client)).Trusted);
    }

    [Fact]
    public void A_certificate_revoked_by_serial_is_refused_and_its_successor_is_not()
    {
        using var old = _pki.Issue(IdentityRole.Node, "b", NodeB);
        using var renewed = _pki.Issue(IdentityRole.Node, "b", NodeB);
        var list = Path.Combine(_pki.Directory, "revoked.json");
        RevocationList.Add(list, new RevocationEntry(CertificateIssuer.SerialOf(old), null, "b", "key on a lost disk", DateTimeOffset.UtcNow));
        var trust = _pki.Trust(new RevocationList(list));

        var verdict = trust.Check(old, IdentityRequirement.Node(TlsSide.Client, "b", NodeB));

        Assert.False(verdict.Trusted);
        Assert.Contains($"it is revoked (serial {CertificateIssuer.SerialOf(old)} (b)", verdict.Problem, StringComparison.Ordinal);
        Assert.Contains("key on a lost disk", verdict.Problem, StringComparison.Ordinal);
        Assert.True(trust.Check(renewed, IdentityRequirement.Node(TlsSide.Client, "b", NodeB)).Trusted);
    }

    [Fact]
    public void Revoking_an_id_refuses_every_certificate_of_that_identity_from_the_next_check_on()
    {
        using var first = _pki.Issue(IdentityRole.Node, "b", NodeB);
        using var second = _pki.Issue(IdentityRole.Node, "b", NodeB);
        var list = Path.Combine(_pki.Directory, "revoked.json");
        var trust = _pki.Trust(new RevocationList(list));
        Assert.True(trust.Check(first, IdentityRequirement.Node(TlsSide.Client, "b", NodeB)).Trusted);

        Assert.True(RevocationList.Add(list, new RevocationEntry(null, NodeB, "b", null, DateTimeOffset.UtcNow)));
        Assert.False(RevocationList.Add(list, new RevocationEntry(null, NodeB, "b", "again", DateTimeOffset.UtcNow)));

        foreach (var certificate in new[] { first, second })
        {
            var verdict = trust.Check(certificate, IdentityRequirement.Node(TlsSide.Client, "b", NodeB));
            Assert.False(verdict.Trusted);
            Assert.Contains($"it is revoked (id {NodeB}", verdict.Problem, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void An_unreadable_revocation_list_refuses_every_certificate()
    {
        var list = Path.Combine(_pki.Directory, "revoked.json");
        File.WriteAllText(list, "{ not json");
        using var certificate = _pki.Issue(IdentityRole.Node, "b", NodeB);

        var verdict = _pki.Trust(new RevocationList(list)).Check(certificate, IdentityRequirement.Node(TlsSide.Client, "b", NodeB));

        Assert.False(verdict.Trusted);
        Assert.Contains("cannot be read, so no certificate can be checked against it", verdict.Problem, StringComparison.Ordinal);
        Assert.Throws<InvalidDataException>(() => RevocationList.Add(list, new RevocationEntry(null, NodeB, null, null, DateTimeOffset.UtcNow)));
    }

    [Fact]
    public void No_certificate_at_all_is_refused()
    {
        var verdict = _pki.Trust().Check(null, IdentityRequirement.Node(TlsSide.Client, "b", NodeB));

        Assert.False(verdict.Trusted);
        Assert.Contains("it presented no certificate", verdict.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void A_certificate_of_another_cluster_is_refused_even_by_a_trusted_authority()
    {
        var otherCluster = Guid.NewGuid();
        using var other = new TestPki(otherCluster);
        using var certificate = other.Issue(IdentityRole.Node, "b", NodeB);
        var trust = new ClusterTrust(_pki.ClusterId, () => [.. _pki.Authorities, .. other.Authorities], RevocationList.None);

        var verdict = trust.Check(certificate, IdentityRequirement.Node(TlsSide.Client, "b", NodeB));

        Assert.False(verdict.Trusted);
        Assert.Contains($"belongs to cluster {otherCluster}, not to this cluster ({_pki.ClusterId})", verdict.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void While_moving_to_a_new_authority_certificates_of_both_are_accepted()
    {
        using var next = new TestPki(_pki.ClusterId);
        using var oldCertificate = _pki.Issue(IdentityRole.Node, "b", NodeB);
        using var newCertificate = next.Issue(IdentityRole.Node, "b", NodeB);
        var trust = new ClusterTrust(_pki.ClusterId, () => [.. _pki.Authorities, .. next.Authorities], RevocationList.None);

        Assert.True(trust.Check(oldCertificate, IdentityRequirement.Node(TlsSide.Client, "b", NodeB)).Trusted);
        Assert.True(trust.Check(newCertificate, IdentityRequirement.Node(TlsSide.Client, "b", NodeB)).Trusted);
    }

    [Fact]
    public void Issuing_for_another_cluster_than_the_authority_s_is_refused()
    {
        var error = Assert.Throws<ArgumentException>(() => CertificateIssuer.Issue(_pki.Authority, new ClusterIdentity(IdentityRole.Node, "b", NodeB, Guid.NewGuid())));

        Assert.Contains($"belongs to cluster {_pki.ClusterId}", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("a,b")]
    [InlineData("cn=x")]
    public void Issuing_for_an_unusable_name_is_refused(string name)
    {
        Assert.Throws<ArgumentException>(() => _pki.Issue(IdentityRole.Node, name));
    }

    [Fact]
    public void A_certificate_without_the_cluster_names_is_not_an_identity()
    {
        using var key = System.Security.Cryptography.ECDsa.Create();
        var request = new CertificateRequest("CN=b", key, System.Security.Cryptography.HashAlgorithmName.SHA256);
        using var plain = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));

        Assert.False(ClusterIdentity.TryRead(plain, out _, out var problem));
        Assert.Contains("it carries no urn:replicator:<role>:<id> name", problem, StringComparison.Ordinal);
    }

    public void Dispose() => _pki.Dispose();
}

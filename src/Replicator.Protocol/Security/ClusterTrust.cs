using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Replicator.Protocol.Security;

/// <summary>Which way a certificate is used in a TLS handshake: the listening side's (server) or the dialing side's (client).</summary>
internal enum TlsSide
{
    Server,
    Client,
}

/// <summary>What a presented certificate must be to be accepted: one of some roles, optionally a given name and id.</summary>
/// <param name="Roles">The roles accepted.</param>
/// <param name="Side">The side the presenter plays in the handshake; its certificate must allow that use.</param>
/// <param name="Name">The name it must carry (the configured peer's name), or null for any.</param>
/// <param name="Id">The id it must carry (the configured peer's id), or null for any.</param>
internal sealed record IdentityRequirement(IReadOnlyList<IdentityRole> Roles, TlsSide Side, string? Name = null, Guid? Id = null)
{
    /// <summary>The configured peer node, <paramref name="name"/> with id <paramref name="id"/>.</summary>
    public static IdentityRequirement Node(TlsSide side, string name, Guid id) => new([IdentityRole.Node], side, name, id);

    public override string ToString() =>
        string.Join(" or ", Roles.Select(ClusterIdentity.RoleText)) + (Name is null ? "" : $" '{Name}'") + (Id is null ? "" : $" ({Id})");
}

/// <summary>The outcome of checking a presented certificate: the identity it proves, or why it proves none.</summary>
internal readonly record struct TrustVerdict(ClusterIdentity? Identity, string? Serial, string? Problem)
{
    public bool Trusted => Problem is null;

    public static TrustVerdict Refused(string problem, string? serial = null) => new(null, serial, problem);
}

/// <summary>
/// Decides whether a certificate presented in a handshake proves a member of this cluster, and
/// which: it must chain to one of the cluster's authorities (and to nothing else), be within its
/// validity, allow the use it is put to, carry an identity of this cluster with the required role
/// (and name and id, where configured), and be revoked neither by serial nor by id.
/// </summary>
/// <remarks>
/// Each check yields a sentence naming what failed (the authority, the dates, the names), so a
/// refused connection is logged with its reason, on the refusing side, before anything else is read
/// from it. The authorities are asked for at every check (<see cref="TlsDirectory"/> reloads them when
/// the file changes); several authorities may be trusted at once while the cluster moves to a new one.
/// </remarks>
internal sealed class ClusterTrust
{
    private readonly Func<X509Certificate2Collection> _authorities;

    /// <param name="clusterId">The cluster whose members are accepted.</param>
    /// <param name="authorities">The cluster's authority certificates, as they are now.</param>
    /// <param name="revocations">The revocation list.</param>
    public ClusterTrust(Guid clusterId, Func<X509Certificate2Collection> authorities, RevocationList revocations)
    {
        ClusterId = clusterId;
        _authorities = authorities;
        Revocations = revocations;
    }

    public Guid ClusterId { get; }

    public RevocationList Revocations { get; }

    /// <summary>Checks a presented certificate against the cluster and <paramref name="requirement"/>.</summary>
    /// <param name="presented">The certificate the other side presented; null when it presented none.</param>
    /// <param name="requirement">Who it must be.</param>
    /// <param name="now">The time to check validity at; now by default.</param>
    public TrustVerdict Check(X509Certificate? presented, IdentityRequirement requirement, DateTimeOffset? now = null)
    {
        ArgumentNullException.ThrowIfNull(requirement);
        if (presented is null)
        {
            return TrustVerdict.Refused($"it presented no certificate; a {requirement} must present one issued by the cluster's authority");
        }

        using var owned = presented is X509Certificate2 ? null : new X509Certificate2(presented);
        var certificate = presented as X509Certificate2 ?? owned!;
        var serial = CertificateIssuer.SerialOf(certificate);
        var what = $"certificate '{certificate.Subject}' (serial {serial})";
        if (ChainProblem(certificate, requirement.Side, now ?? DateTimeOffset.UtcNow) is { } chainProblem)
        {
            return TrustVerdict.Refused($"{what} {chainProblem}", serial);
        }

        if (!ClusterIdentity.TryRead(certificate, out var identity, out var identityProblem))
        {
            return TrustVerdict.Refused($"{what} is not a Replicator identity: {identityProblem}", serial);
        }

        if (identity!.ClusterId != ClusterId)
        {
            return TrustVerdict.Refused($"{what} belongs to cluster {identity.ClusterId}, not to this cluster ({ClusterId})", serial);
        }

        if (!requirement.Roles.Contains(identity.Role))
        {
            return TrustVerdict.Refused($"{what} is the {identity}, but a {requirement} is required here", serial);
        }

        if ((requirement.Name is { } name && name != identity.Name) || (requirement.Id is { } id && id != identity.Id))
        {
            return TrustVerdict.Refused($"{what} names the {identity}, but the configured peer is the {requirement}", serial);
        }

        if (Revocations.FindRevocation(serial, identity.Id) is { } revoked)
        {
            return TrustVerdict.Refused($"{what} of the {identity}: {revoked}", serial);
        }

        return new TrustVerdict(identity, serial, null);
    }

    /// <summary>Why <paramref name="certificate"/> does not chain to exactly one of the cluster's authorities at <paramref name="now"/> for <paramref name="side"/>; null when it does.</summary>
    private string? ChainProblem(X509Certificate2 certificate, TlsSide side, DateTimeOffset now)
    {
        X509Certificate2Collection authorities;
        try
        {
            authorities = _authorities();
        }
        catch (TlsSetupException e)
        {
            return $"cannot be checked: this side's own TLS files cannot be read ({e.Message})";
        }

        if (authorities.Count == 0)
        {
            return "cannot be checked: this side trusts no authority";
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.DisableCertificateDownloads = true;
        chain.ChainPolicy.VerificationTime = now.UtcDateTime;
        chain.ChainPolicy.VerificationTimeIgnored = false;
        chain.ChainPolicy.ApplicationPolicy.Add(new Oid(side == TlsSide.Server ? CertificateIssuer.ServerAuthOid : CertificateIssuer.ClientAuthOid));
        bool built;
        try
        {
            built = chain.Build(certificate);
        }
        catch (CryptographicException e)
        {
            return $"cannot be checked ({e.Message})";
        }

        if (built && chain.ChainElements.Count == 2)
        {
            return null;
        }

        var statuses = chain.ChainElements.SelectMany(e => e.ChainElementStatus).Concat(chain.ChainStatus).Select(s => s.Status).ToHashSet();
        if (statuses.Contains(X509ChainStatusFlags.UntrustedRoot) || statuses.Contains(X509ChainStatusFlags.PartialChain))
        {
            return $"is not issued by this cluster's authority (it was issued by '{certificate.Issuer}'; this side trusts {string.Join(", ", authorities.Select(a => $"'{a.Subject}'"))})";
        }

        if (statuses.Contains(X509ChainStatusFlags.NotTimeValid))
        {
            return $"is not valid now ({now.UtcDateTime:u}): it is valid from {certificate.NotBefore.ToUniversalTime():u} to {certificate.NotAfter.ToUniversalTime():u}"
                + (certificate.NotAfter.ToUniversalTime() < now.UtcDateTime ? " (expired: issue a new one, see docs/security.md)" : "");
        }

        if (statuses.Contains(X509ChainStatusFlags.NotValidForUsage))
        {
            return $"does not allow TLS {(side == TlsSide.Server ? "server" : "client")} authentication, which this side of the connection needs";
        }

        if (built)
        {
            return "is not signed directly by the cluster's authority (intermediate authorities are not accepted)";
        }

        return $"does not chain to this cluster's authority ({string.Join(", ", statuses.Where(s => s != X509ChainStatusFlags.NoError))})";
    }
}

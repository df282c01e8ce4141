using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Replicator.Protocol.Security;

/// <summary>What a certificate of the cluster is for; it decides what its holder may do.</summary>
internal enum IdentityRole
{
    /// <summary>A storage node: the peer link (both ways), the witness (as a client), NBD and admin (as a server).</summary>
    Node,
    /// <summary>The witness: serves votes to nodes.</summary>
    Witness,
    /// <summary>The block gateway on a hypervisor host.</summary>
    Gateway,
    /// <summary>An administrator's client (the CLI, a status page reader).</summary>
    Admin,
    /// <summary>An NBD client (QEMU, libnbd) attaching volumes.</summary>
    Client,
}

/// <summary>
/// Who a certificate of the cluster names: a role, a name (for people and configuration) and an id
/// (what the cluster's state records), all inside one cluster.
/// </summary>
/// <remarks>
/// <para>How a certificate carries it (written by <see cref="CertificateIssuer"/>, read by <see cref="TryRead"/>):</para>
/// <list type="bullet">
/// <item>the subject's common name (CN) is the name, e.g. <c>CN=a</c>;</item>
/// <item>a URI subject alternative name <c>urn:replicator:&lt;role&gt;:&lt;id&gt;</c> gives the role and
/// the id, e.g. <c>urn:replicator:node:3f2c…</c>;</item>
/// <item>a second URI <c>urn:replicator:cluster:&lt;cluster id&gt;</c> names the cluster (the authority
/// carries the same one), so a certificate says which cluster it belongs to even read on its own.</item>
/// </list>
/// <para>The role sits in a name the authority signs, not in a field a client chooses, so a witness
/// certificate cannot pass for a node's. Extended key usages are set too (server and client
/// authentication for the roles that listen, client authentication for the others) so that other
/// TLS software reads the certificates the same way.</para>
/// </remarks>
internal sealed record ClusterIdentity(IdentityRole Role, string Name, Guid Id, Guid ClusterId)
{
    public const string UriPrefix = "urn:replicator:";
    private const string ClusterWord = "cluster";
    private const string SubjectAltNameOid = "2.5.29.17";
    private static readonly Asn1Tag UriTag = new(TagClass.ContextSpecific, 6);

    /// <summary>The longest name a certificate of the cluster may carry (node names are at most 64 characters).</summary>
    public const int MaxNameLength = 64;

    public string RoleName => RoleText(Role);

    /// <summary><c>urn:replicator:&lt;role&gt;:&lt;id&gt;</c>.</summary>
    public Uri RoleUri => new($"{UriPrefix}{RoleName}:{Id}");

    /// <summary><c>urn:replicator:cluster:&lt;cluster id&gt;</c>.</summary>
    public Uri ClusterUri => ClusterUriOf(ClusterId);

    public static Uri ClusterUriOf(Guid clusterId) => new($"{UriPrefix}{ClusterWord}:{clusterId}");

    public static string RoleText(IdentityRole role) => role.ToString().ToLowerInvariant();

    public static bool TryParseRole(string? text, out IdentityRole role)
    {
        foreach (var candidate in Enum.GetValues<IdentityRole>())
        {
            if (string.Equals(text, RoleText(candidate), StringComparison.Ordinal))
            {
                role = candidate;
                return true;
            }
        }

        role = default;
        return false;
    }

    public override string ToString() => $"{RoleName} '{Name}' ({Id})";

    /// <summary>Reads the identity a certificate carries; false, with the reason, when it carries none or a malformed one.</summary>
    public static bool TryRead(X509Certificate2 certificate, out ClusterIdentity? identity, out string problem)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        identity = null;
        var name = certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
        if (string.IsNullOrWhiteSpace(name) || name.Length > MaxNameLength)
        {
            problem = $"its subject '{certificate.Subject}' has no common name of 1 to {MaxNameLength} characters";
            return false;
        }

        List<string> uris;
        try
        {
            uris = UrisOf(certificate);
        }
        catch (Exception e) when (e is AsnContentException or CryptographicException)
        {
            problem = $"its subject alternative names cannot be read ({e.Message})";
            return false;
        }

        Guid? clusterId = null;
        (IdentityRole Role, Guid Id)? member = null;
        foreach (var uri in uris.Where(u => u.StartsWith(UriPrefix, StringComparison.Ordinal)))
        {
            var parts = uri[UriPrefix.Length..].Split(':');
            if (parts.Length != 2 || !Guid.TryParse(parts[1], out var id))
            {
                problem = $"its name '{uri}' is not of the form {UriPrefix}<role>:<id>";
                return false;
            }

            if (parts[0] == ClusterWord)
            {
                if (clusterId is not null)
                {
                    problem = "it names more than one cluster";
                    return false;
                }

                clusterId = id;
            }
            else if (TryParseRole(parts[0], out var role))
            {
                if (member is not null)
                {
                    problem = "it names more than one role";
                    return false;
                }

                member = (role, id);
            }
            else
            {
                problem = $"its name '{uri}' names an unknown role '{parts[0]}'";
                return false;
            }
        }

        if (member is not { } found)
        {
            problem = $"it carries no {UriPrefix}<role>:<id> name: it was not issued for a Replicator cluster";
            return false;
        }

        if (clusterId is not { } cluster)
        {
            problem = $"it carries no {UriPrefix}{ClusterWord}:<id> name: it was not issued for a Replicator cluster";
            return false;
        }

        identity = new ClusterIdentity(found.Role, name, found.Id, cluster);
        problem = "";
        return true;
    }

    /// <summary>The cluster an authority certificate names, if it names one.</summary>
    public static Guid? ClusterOfAuthority(X509Certificate2 authority)
    {
        try
        {
            foreach (var uri in UrisOf(authority))
            {
                var prefix = $"{UriPrefix}{ClusterWord}:";
                if (uri.StartsWith(prefix, StringComparison.Ordinal) && Guid.TryParse(uri[prefix.Length..], out var id))
                {
                    return id;
                }
            }
        }
        catch (Exception e) when (e is AsnContentException or CryptographicException)
        {
        }

        return null;
    }

    /// <summary>The URI subject alternative names (GeneralName [6] IA5String) of a certificate.</summary>
    private static List<string> UrisOf(X509Certificate2 certificate)
    {
        var uris = new List<string>();
        if (certificate.Extensions[SubjectAltNameOid] is not { } extension)
        {
            return uris;
        }

        var names = new AsnReader(extension.RawData, AsnEncodingRules.DER).ReadSequence();
        while (names.HasData)
        {
            if (names.PeekTag().HasSameClassAndValue(UriTag))
            {
                uris.Add(names.ReadCharacterString(UniversalTagNumber.IA5String, UriTag));
            }
            else
            {
                names.ReadEncodedValue();
            }
        }

        return uris;
    }
}

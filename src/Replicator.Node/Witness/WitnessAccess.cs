using Replicator.Protocol.Security;

namespace Replicator.Node.Witness;

/// <summary>
/// Who may do what at the witness, decided by the certificate a request came with, never by a field
/// of the request: a node claims, renews and releases only its own vote (the name its certificate
/// carries); any member of the cluster (a node, the gateway, an administrator) may read the votes.
/// </summary>
internal static class WitnessAccess
{
    /// <summary>The roles whose certificates the witness's TLS listener takes at all.</summary>
    public static readonly IReadOnlyList<IdentityRole> Readers = [IdentityRole.Node, IdentityRole.Gateway, IdentityRole.Admin];

    /// <summary>
    /// The node a vote request acts for, or why it may not: the caller must prove a node's identity,
    /// and a node named in the request must be that node.
    /// </summary>
    /// <param name="caller">The verdict on the request's client certificate (checked again per request, so a revocation counts at once).</param>
    /// <param name="named">The node the request names, if it names one.</param>
    /// <param name="action">What the request does, for the message ("claim", "release").</param>
    public static (string? Node, string? Refusal) VoterOf(TrustVerdict caller, string? named, string action)
    {
        if (!caller.Trusted)
        {
            return (null, $"the caller's certificate is not trusted: {caller.Problem}");
        }

        var identity = caller.Identity!;
        if (identity.Role != IdentityRole.Node)
        {
            return (null, $"the {identity} may read the votes but not {action} one: only a node may, and only its own");
        }

        if (!string.IsNullOrEmpty(named) && named != identity.Name)
        {
            return (null, $"node '{identity.Name}' may {action} only its own vote, not node '{named}''s");
        }

        return (identity.Name, null);
    }
}

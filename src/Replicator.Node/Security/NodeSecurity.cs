using Replicator.Node.Configuration;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;
using Replicator.Protocol.Security;

namespace Replicator.Node.Security;

/// <summary>
/// A node's TLS identity and what it trusts: its certificate, key and the cluster's authority (in
/// <c>node.json</c>'s <c>tls.directory</c>, <c>tls/</c> by default) and the cluster's revocation list.
/// Loaded and checked once at start, so a node whose files do not match its configuration does not
/// start, and says why; read again at each handshake after that, so a renewed certificate or a new
/// revocation takes effect without a restart.
/// </summary>
internal sealed class NodeSecurity
{
    private NodeSecurity(TlsDirectory credentials, ClusterTrust trust)
    {
        Credentials = credentials;
        Trust = trust;
    }

    public TlsDirectory Credentials { get; }

    public ClusterTrust Trust { get; }

    /// <summary>
    /// Loads and checks the node's TLS files. Null for a node that has neither a peer nor a witness and
    /// no certificate: it has nobody to authenticate to.
    /// </summary>
    /// <exception cref="ConfigurationException">The files are missing or unusable, name another node than <c>node.json</c> does, or the certificate is revoked.</exception>
    public static NodeSecurity? Load(NodeConfig config, string directory)
    {
        var credentials = new TlsDirectory(config.Tls.DirectoryPath(directory));
        if (config.Peer is null && config.Witness is null && !credentials.Exists)
        {
            return null;
        }

        var needs = config.Peer is not null ? $"peer {config.Peer.Name}" : "the witness";
        TlsMaterial own;
        try
        {
            own = credentials.Load();
        }
        catch (TlsSetupException e)
        {
            throw new ConfigurationException($"node {config.Name} cannot authenticate to {needs}: {e.Message}");
        }

        var identity = own.Identity;
        if (identity.Role != IdentityRole.Node || identity.Name != config.Name || identity.Id != config.NodeId || identity.ClusterId != config.ClusterId)
        {
            throw new ConfigurationException(
                $"{credentials.CertificatePath} is the certificate of the {identity} in cluster {identity.ClusterId}, but {NodeConfig.PathIn(directory)} is node '{config.Name}' ({config.NodeId}) "
                + $"in cluster {config.ClusterId}: install this node's own certificate (replicator cert issue node --name {config.Name} --id {config.NodeId} ..., see docs/security.md)");
        }

        var trust = new ClusterTrust(config.ClusterId, () => credentials.Load().Authorities, new RevocationList(config.Tls.RevocationPath(directory)));
        if (trust.Revocations.FindRevocation(own.Serial, identity.Id) is { } revoked)
        {
            throw new ConfigurationException($"the certificate of node {config.Name} in {credentials.CertificatePath} (serial {own.Serial}) cannot be used: {revoked}");
        }

        if (config.Peer is { NodeId: null } peer)
        {
            throw new ConfigurationException(
                $"{NodeConfig.PathIn(directory)}: peer.nodeId is missing. The peer's certificate must carry both its name ('{peer.Name}') and its id before this node reads a byte from it: "
                + "add \"nodeId\": \"<id>\" to the peer section (the id is in the peer's node.json, and 'replicator cert show' prints it from its certificate)");
        }

        return new NodeSecurity(credentials, trust);
    }

    /// <summary>What the peer link authenticates with; <paramref name="checkPeerHello"/> is the node's own check of the peer's Hello.</summary>
    public PeerLinkSecurity ForPeer(PeerConfig peer, Func<Hello, string?> checkPeerHello) =>
        new(Credentials, Trust, peer.Name, peer.NodeId!.Value, peer.WantsEncryption) { CheckPeerHello = checkPeerHello };
}

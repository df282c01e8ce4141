using System.Numerics;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Peer;

/// <summary>
/// Decides whether this node pairs with the peer whose Hello it received. The reasons are
/// sent to the peer and logged on both nodes, so they name both nodes instead of saying
/// "this node".
/// </summary>
internal static class PeerHelloValidator
{
    /// <summary>Why this node refuses the peer, or null (and the peer's identity) when it accepts.</summary>
    /// <param name="certified">The node the peer's certificate proved, when the connection is authenticated; the Hello must name it.</param>
    public static string? FindRefusal(Hello local, Hello peer, string peerAddress, out PeerIdentity? peerIdentity, PeerIdentity? certified = null)
    {
        peerIdentity = null;
        var localName = Describe(local.NodeName, local.NodeId);
        var peerName = Describe(peer.NodeName, peer.NodeId, peerAddress);

        if (peer.ProtocolMajor != local.ProtocolMajor)
        {
            var older = peer.ProtocolMajor < local.ProtocolMajor ? peerName : localName;
            var newer = peer.ProtocolMajor < local.ProtocolMajor ? localName : peerName;
            return $"protocol version mismatch: node {peerName} speaks peer protocol {peer.ProtocolMajor}.{peer.ProtocolMinor}, "
                + $"node {localName} speaks peer protocol {local.ProtocolMajor}.{local.ProtocolMinor}; nodes pair only within one major version: "
                + $"upgrade node {older} to the Replicator release of node {newer}";
        }

        if (!Guid.TryParse(peer.ClusterId, out var peerCluster))
        {
            return $"node {peerName} sent an invalid cluster id '{peer.ClusterId}' (expected a GUID)";
        }

        if (!Guid.TryParse(peer.NodeId, out var peerNode))
        {
            return $"node {peerName} sent an invalid node id '{peer.NodeId}' (expected a GUID)";
        }

        if (peerCluster != Guid.Parse(local.ClusterId))
        {
            return $"cluster mismatch: node {peerName} belongs to cluster {peerCluster}, node {localName} to cluster {local.ClusterId}; "
                + "a node pairs only with a node of its own cluster: check the peer address and the cluster id in both nodes' configuration";
        }

        if (peerNode == Guid.Parse(local.NodeId))
        {
            return $"node id conflict: node {peerName} has the node id {peerNode} of node {localName}; a node cannot pair with itself, "
                + "and two nodes must not share an id (was a data directory copied?)";
        }

        if (certified is not null && (certified.NodeId != peerNode || certified.NodeName != peer.NodeName || certified.ClusterId != peerCluster))
        {
            return $"identity mismatch: node {peerName} authenticated with the certificate of node '{certified.NodeName}' ({certified.NodeId}) "
                + $"but its Hello names node '{peer.NodeName}' ({peerNode}) of cluster {peerCluster}: check that node's node.json against its certificate";
        }

        if (FindVolumeProblem(peer, peerName) is { } problem)
        {
            return problem;
        }

        peerIdentity = new PeerIdentity(peerCluster, peerNode, peer.NodeName);
        return null;
    }

    private static string? FindVolumeProblem(Hello peer, string peerName)
    {
        var seen = new HashSet<Guid>();
        foreach (var volume in peer.Volumes)
        {
            if (!Guid.TryParse(volume.VolumeId, out var id))
            {
                return $"node {peerName} described volume '{volume.Name}' with an invalid id '{volume.VolumeId}' (expected a GUID)";
            }

            if (!seen.Add(id))
            {
                return $"node {peerName} described volume {id} twice";
            }

            if (!BitOperations.IsPow2(volume.AllocationUnit))
            {
                return $"node {peerName} described volume '{volume.Name}' ({id}) with an allocation unit of {volume.AllocationUnit} bytes (expected a power of two)";
            }
        }

        return null;
    }

    private static string Describe(string name, string nodeId, string? address = null)
    {
        var label = string.IsNullOrEmpty(name) ? nodeId : name;
        return address is null ? $"'{label}'" : $"'{label}' ({address})";
    }
}

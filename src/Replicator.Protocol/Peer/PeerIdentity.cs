namespace Replicator.Protocol.Peer;

/// <summary>Who a node is, as its peer sees it in the handshake.</summary>
internal sealed record PeerIdentity(Guid ClusterId, Guid NodeId, string NodeName)
{
    public override string ToString() => $"{NodeName} ({NodeId})";
}

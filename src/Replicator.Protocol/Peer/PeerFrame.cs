using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Peer;

/// <summary>
/// One frame read from a peer: its header and, when it has one, its payload in a pooled
/// buffer that the receiver owns and disposes.
/// </summary>
internal readonly record struct PeerFrame(Envelope Header, PeerPayload? Payload)
{
    public int PayloadLength => Payload?.Length ?? 0;
}

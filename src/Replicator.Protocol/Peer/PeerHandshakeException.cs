namespace Replicator.Protocol.Peer;

/// <summary>A peer connection could not be set up. The message says why, in words meant for an operator.</summary>
internal sealed class PeerHandshakeException : IOException
{
    public PeerHandshakeException(PeerHandshakeFailure failure, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Failure = failure;
    }

    public PeerHandshakeFailure Failure { get; }
}

internal enum PeerHandshakeFailure
{
    /// <summary>This node refused the peer (and told it so).</summary>
    RefusedByThisNode,
    /// <summary>The peer refused this node.</summary>
    RefusedByPeer,
    /// <summary>The peer did not complete the handshake in time.</summary>
    TimedOut,
    /// <summary>The peer sent something other than a handshake, or closed the connection during it.</summary>
    ProtocolError,
    /// <summary>The transport failed during the handshake.</summary>
    ConnectionLost,
    /// <summary>The TLS handshake failed: a certificate was refused (by either side), or the other side does not speak TLS.</summary>
    NotAuthenticated,
}

namespace Replicator.Protocol.Peer;

/// <summary>Why a peer connection ended. Logged, exposed on the connection, and carried by <see cref="PeerConnectionClosedException"/>.</summary>
internal enum PeerConnectionEndReason
{
    /// <summary>The peer closed the connection, or said Goodbye.</summary>
    RemoteClosed,
    /// <summary>Nothing arrived from the peer for the keepalive timeout: it is stopped, hung, or the link is down.</summary>
    KeepaliveTimeout,
    /// <summary>The peer sent bytes that break the protocol (<see cref="PeerProtocolException"/>).</summary>
    ProtocolError,
    /// <summary>This node closed the connection (<see cref="PeerConnection.CloseAsync"/>).</summary>
    LocalShutdown,
    /// <summary>The transport failed (connection reset, socket error).</summary>
    TransportError,
    /// <summary>A bug in this node: an exception where none was expected.</summary>
    InternalError,
}

/// <summary>How a peer connection ended: the reason, a sentence for people, and the exception behind it, if any.</summary>
internal sealed record PeerConnectionEnd(PeerConnectionEndReason Reason, string Message, Exception? Exception = null)
{
    public override string ToString() => $"{Reason}: {Message}";
}

/// <summary>A request could not complete because its peer connection ended.</summary>
internal sealed class PeerConnectionClosedException : IOException
{
    public PeerConnectionClosedException(string peerName, PeerConnectionEnd end)
        : base($"The connection to peer {peerName} is closed ({end.Reason}: {end.Message}).", end.Exception)
    {
        End = end;
    }

    public PeerConnectionEnd End { get; }

    public PeerConnectionEndReason Reason => End.Reason;
}

using System.Diagnostics.CodeAnalysis;

namespace Replicator.Protocol.Peer;

/// <summary>What was wrong with bytes received from a peer.</summary>
internal enum PeerProtocolError
{
    /// <summary>The frame does not start with <see cref="PeerWire.FrameMagic"/>: not a Replicator peer, or the stream is out of step.</summary>
    BadMagic,
    HeaderTooLarge,
    PayloadTooLarge,
    /// <summary>The header CRC32C does not match: the header or a length was damaged in transit.</summary>
    HeaderChecksumMismatch,
    /// <summary>The header is not a valid protobuf Envelope.</summary>
    MalformedHeader,
    /// <summary>A well-formed message that makes no sense at this point of the conversation.</summary>
    UnexpectedMessage,
    /// <summary>The stream ended inside a frame.</summary>
    TruncatedFrame,
}

/// <summary>
/// A peer sent bytes that break the protocol. The connection cannot stay in step after one,
/// so it ends with <see cref="PeerConnectionEndReason.ProtocolError"/>.
/// </summary>
internal sealed class PeerProtocolException : IOException
{
    public PeerProtocolException(PeerProtocolError error, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Error = error;
    }

    public PeerProtocolError Error { get; }

    [DoesNotReturn]
    public static void Throw(PeerProtocolError error, string message, Exception? innerException = null)
        => throw new PeerProtocolException(error, message, innerException);
}

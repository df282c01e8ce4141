using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Peer;

/// <summary>
/// The edge checks of an incoming request that do not need the node: whether the payload
/// fits the request. A request that fails gets the returned reply from the connection
/// itself; the handler only ever sees requests that passed.
/// </summary>
internal static class PeerRequestValidator
{
    /// <summary>
    /// Whether a body is a request (answered with a Reply) rather than connection control.
    /// Every new message in the Envelope is a request unless listed here, so adding one needs
    /// no change to the transport.
    /// </summary>
    public static bool IsRequest(Envelope.BodyOneofCase body) => body switch
    {
        Envelope.BodyOneofCase.None
            or Envelope.BodyOneofCase.Hello
            or Envelope.BodyOneofCase.HelloAccepted
            or Envelope.BodyOneofCase.Refused
            or Envelope.BodyOneofCase.Ping
            or Envelope.BodyOneofCase.Pong
            or Envelope.BodyOneofCase.Goodbye
            or Envelope.BodyOneofCase.Reply => false,
        _ => true,
    };

    /// <summary>The reply refusing <paramref name="request"/>, or null when it may go to the handler. <paramref name="payloadLength"/> counts block data, not block checksums.</summary>
    public static (ReplyStatus Status, string Message)? Validate(Envelope request, int payloadLength, PeerFrameLimits limits)
    {
        switch (request.BodyCase)
        {
            case Envelope.BodyOneofCase.None:
                return (ReplyStatus.NotSupported, $"this node speaks peer protocol {PeerWire.ProtocolMajor}.{PeerWire.ProtocolMinor} and does not know the request");
            case Envelope.BodyOneofCase.Write when payloadLength != request.Write.Length:
                return (ReplyStatus.Invalid, $"a write of {request.Write.Length} bytes came with {payloadLength} bytes of payload");
            case Envelope.BodyOneofCase.Write when request.BlockChecksumSize != 0 && request.Write.Offset % PeerWire.BlockChecksumSize != 0:
                return (ReplyStatus.Invalid, $"a write at {request.Write.Offset} came with block checksums; only 4 KiB-aligned writes carry them");
            case Envelope.BodyOneofCase.Read when request.Read.BlockChecksums
                && (request.Read.Offset % PeerWire.BlockChecksumSize != 0 || request.Read.Length % PeerWire.BlockChecksumSize != 0
                    || (long)request.Read.Length / PeerWire.BlockChecksumSize * (PeerWire.BlockChecksumSize + sizeof(ulong)) > limits.MaxPayloadLength):
                return (ReplyStatus.Invalid, $"block checksums are sent for 4 KiB-aligned reads that fit a frame, not [{request.Read.Offset}, +{request.Read.Length})");
            case Envelope.BodyOneofCase.Read when request.Read.Length > limits.MaxPayloadLength:
                return (ReplyStatus.Invalid, $"a read of {request.Read.Length} bytes exceeds the largest reply payload ({limits.MaxPayloadLength} bytes)");
            case Envelope.BodyOneofCase.Trim
                or Envelope.BodyOneofCase.WriteZeroes
                or Envelope.BodyOneofCase.Flush
                or Envelope.BodyOneofCase.Read when payloadLength != 0:
                return (ReplyStatus.Invalid, $"a {request.BodyCase} request takes no payload but came with {payloadLength} bytes");
            default:
                return null;
        }
    }
}

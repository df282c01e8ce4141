using Microsoft.Extensions.Logging;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Peer;

internal sealed partial class PeerConnection
{
    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Peer connection to {Peer} ended: {Reason}: {Message}")]
        public static partial void ConnectionClosed(ILogger logger, string peer, PeerConnectionEndReason reason, string message);

        [LoggerMessage(2, LogLevel.Warning, "Peer connection to {Peer} failed: {Reason}: {Message}")]
        public static partial void ConnectionFailed(ILogger logger, string peer, PeerConnectionEndReason reason, string message, Exception? exception);

        [LoggerMessage(3, LogLevel.Warning, "The {Body} payload of request {RequestId} from peer {Peer} ({Length} bytes) failed its checksum ({Problem}); not applied, asking the peer to resend it")]
        public static partial void RequestPayloadCorrupted(ILogger logger, string peer, Envelope.BodyOneofCase body, ulong requestId, int length, string problem);

        [LoggerMessage(4, LogLevel.Warning, "A payload of {Body} request {RequestId} to peer {Peer} arrived corrupted; sending the request again (retry {Attempt} of {MaxRetries})")]
        public static partial void ChecksumMismatchResending(ILogger logger, string peer, Envelope.BodyOneofCase body, ulong requestId, int attempt, int maxRetries);

        [LoggerMessage(5, LogLevel.Error, "A payload of {Body} request to peer {Peer} arrived corrupted at each of {Attempts} attempts; giving up on the request")]
        public static partial void ChecksumRetriesExhausted(ILogger logger, string peer, Envelope.BodyOneofCase body, int attempts);

        [LoggerMessage(6, LogLevel.Warning, "The reply payload to request {RequestId} from peer {Peer} ({Length} bytes) failed its checksum ({Problem}); the request will be sent again")]
        public static partial void ReplyPayloadCorrupted(ILogger logger, string peer, ulong requestId, int length, string problem);

        [LoggerMessage(7, LogLevel.Debug, "Peer {Peer} replied to request {RequestId}, which is no longer waiting (cancelled or already answered)")]
        public static partial void ReplyWithoutRequest(ILogger logger, string peer, ulong requestId);

        [LoggerMessage(8, LogLevel.Warning, "Refused {Body} request {RequestId} from peer {Peer} with {Status}: {Message}")]
        public static partial void RequestRefused(ILogger logger, string peer, Envelope.BodyOneofCase body, ulong requestId, ReplyStatus status, string message);

        [LoggerMessage(9, LogLevel.Error, "The handler of {Body} request {RequestId} from peer {Peer} failed; replying IO_ERROR")]
        public static partial void HandlerFailed(ILogger logger, string peer, Envelope.BodyOneofCase body, ulong requestId, Exception exception);

        [LoggerMessage(11, LogLevel.Warning, "Peer {Peer} has {InUse} bytes of request payloads in flight here, its receive window of {Window} bytes, and sends a {Body} request with {Length} more: reading from it waits until this node has replied to enough of them")]
        public static partial void ReceiveWindowFull(ILogger logger, string peer, long inUse, long window, Envelope.BodyOneofCase body, int length);

        [LoggerMessage(10, LogLevel.Error, "The handler of {Body} request {RequestId} from peer {Peer} returned without replying; replying IO_ERROR")]
        public static partial void HandlerDidNotReply(ILogger logger, string peer, Envelope.BodyOneofCase body, ulong requestId);
    }
}

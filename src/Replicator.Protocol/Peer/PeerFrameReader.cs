using System.Buffers;
using System.Buffers.Binary;
using Google.Protobuf;
using Replicator.Core.Hashing;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Peer;

/// <summary>
/// Cuts peer frames out of received bytes. A pure function of its input: no I/O, no state
/// across calls, so every split of a frame across buffer segments parses the same.
/// </summary>
/// <remarks>
/// <code>
///  A peer frame; integers are big-endian.
///
///   0               4               8               12              16
///  +---------------+---------------+---------------+---------------+
///  |     magic     | header length | payload length| header CRC32C |
///  |    "RPLP"     |   (uint32)    |   (uint32)    |   (uint32)    |
///  +---------------+---------------+---------------+---------------+
///  |  header: a protobuf Envelope (peer.proto), header length bytes |
///  +---------------------------------------------------------------+
///  |  payload: raw block data, payload length bytes (may be 0)     |
///  +---------------------------------------------------------------+
///
///  header CRC32C = CRC-32C over bytes 0..11 of the prefix, then the header.
///  The payload is covered by the Envelope's payload_checksum (XXH3-64), which the
///  connection checks before anything uses the payload.
/// </code>
/// Checks, in order, each failing with its own <see cref="PeerProtocolError"/>: the magic and
/// both lengths as soon as the 16-byte prefix is there (an oversized frame is refused before
/// it is buffered), then the CRC and the protobuf parse once the header is there.
/// </remarks>
internal static class PeerFrameReader
{
    /// <summary>
    /// Reads one frame from the front of <paramref name="buffer"/>. Returns false, leaving
    /// <paramref name="buffer"/> untouched, when the frame is not complete yet; on success
    /// slices the frame off <paramref name="buffer"/>. Throws <see cref="PeerProtocolException"/>
    /// for bytes that are not a valid frame.
    /// </summary>
    public static bool TryReadFrame(ref ReadOnlySequence<byte> buffer, PeerFrameLimits limits, out PeerFrame frame)
    {
        frame = default;
        if (buffer.Length < PeerWire.PrefixLength)
        {
            return false;
        }

        Span<byte> prefix = stackalloc byte[PeerWire.PrefixLength];
        buffer.Slice(0, PeerWire.PrefixLength).CopyTo(prefix);
        var (headerLength, payloadLength) = ValidatePrefix(prefix, limits);

        var frameLength = PeerWire.PrefixLength + (long)headerLength + payloadLength;
        if (buffer.Length < frameLength)
        {
            return false;
        }

        var header = buffer.Slice(PeerWire.PrefixLength, headerLength);
        VerifyHeaderChecksum(prefix, header);
        var envelope = ParseEnvelope(header);
        var payload = payloadLength == 0
            ? null
            : PeerPayload.CopyFrom(buffer.Slice(PeerWire.PrefixLength + headerLength, payloadLength));

        buffer = buffer.Slice(frameLength);
        frame = new PeerFrame(envelope, payload);
        return true;
    }

    private static (int HeaderLength, int PayloadLength) ValidatePrefix(ReadOnlySpan<byte> prefix, PeerFrameLimits limits)
    {
        var magic = BinaryPrimitives.ReadUInt32BigEndian(prefix[PeerWire.MagicOffset..]);
        if (magic != PeerWire.FrameMagic)
        {
            PeerProtocolException.Throw(
                PeerProtocolError.BadMagic,
                $"Peer frame starts with 0x{magic:X8} instead of the magic 0x{PeerWire.FrameMagic:X8} (\"RPLP\"): the other end is not a Replicator peer, or the stream is out of step.");
        }

        var headerLength = BinaryPrimitives.ReadUInt32BigEndian(prefix[PeerWire.HeaderLengthOffset..]);
        if (headerLength > (uint)limits.MaxHeaderLength)
        {
            PeerProtocolException.Throw(
                PeerProtocolError.HeaderTooLarge,
                $"Peer frame header of {headerLength} bytes exceeds the limit of {limits.MaxHeaderLength} bytes.");
        }

        var payloadLength = BinaryPrimitives.ReadUInt32BigEndian(prefix[PeerWire.PayloadLengthOffset..]);
        if (payloadLength > (uint)limits.MaxPayloadLength)
        {
            PeerProtocolException.Throw(
                PeerProtocolError.PayloadTooLarge,
                $"Peer frame payload of {payloadLength} bytes exceeds the limit of {limits.MaxPayloadLength} bytes.");
        }

        return ((int)headerLength, (int)payloadLength);
    }

    private static void VerifyHeaderChecksum(ReadOnlySpan<byte> prefix, in ReadOnlySequence<byte> header)
    {
        var state = Crc32C.Append(Crc32C.InitialState, prefix[..PeerWire.CrcCoveredPrefixLength]);
        foreach (var segment in header)
        {
            state = Crc32C.Append(state, segment.Span);
        }

        var computed = Crc32C.Complete(state);
        var expected = BinaryPrimitives.ReadUInt32BigEndian(prefix[PeerWire.HeaderCrcOffset..]);
        if (computed != expected)
        {
            PeerProtocolException.Throw(
                PeerProtocolError.HeaderChecksumMismatch,
                $"Peer frame header failed its CRC32C check (frame says 0x{expected:X8}, computed 0x{computed:X8}): the header was damaged in transit.");
        }
    }

    private static Envelope ParseEnvelope(in ReadOnlySequence<byte> header)
    {
        try
        {
            return Envelope.Parser.ParseFrom(header);
        }
        catch (InvalidProtocolBufferException exception)
        {
            throw new PeerProtocolException(
                PeerProtocolError.MalformedHeader,
                $"Peer frame header of {header.Length} bytes is not a valid Envelope message: {exception.Message}",
                exception);
        }
    }
}

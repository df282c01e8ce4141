using System.Buffers;
using System.Buffers.Binary;
using Google.Protobuf;
using Replicator.Core.Hashing;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Peer;

/// <summary>
/// Writes peer frames (layout in <see cref="PeerFrameReader"/>) straight into an output
/// buffer: the Envelope is serialized in place after the prefix and the payload copied
/// behind it, with no intermediate array.
/// </summary>
internal static class PeerFrameWriter
{
    /// <summary>
    /// Stamps <paramref name="header"/>'s payload checksum for <paramref name="payload"/>
    /// (0 when there is none). Done once per payload, outside any lock, before the first write.
    /// </summary>
    public static void SealPayload(Envelope header, ReadOnlySpan<byte> payload)
        => header.PayloadChecksum = payload.IsEmpty ? 0 : ContentHash.Of(payload);

    /// <summary>
    /// Writes one frame. The caller has sealed the payload (<see cref="SealPayload"/>) and
    /// serializes calls: a frame is never interleaved with another.
    /// </summary>
    /// <exception cref="ArgumentException">The header or the payload exceeds <paramref name="limits"/>; nothing was written.</exception>
    public static void WriteFrame(IBufferWriter<byte> output, Envelope header, ReadOnlySpan<byte> payload, PeerFrameLimits limits)
    {
        var headerLength = header.CalculateSize();
        if (headerLength > limits.MaxHeaderLength)
        {
            throw new ArgumentException($"The {header.BodyCase} header is {headerLength} bytes, more than the {limits.MaxHeaderLength} bytes a peer accepts.", nameof(header));
        }

        if (payload.Length > limits.MaxPayloadLength)
        {
            throw new ArgumentException($"The payload is {payload.Length} bytes, more than the {limits.MaxPayloadLength} bytes a peer accepts in one frame.", nameof(payload));
        }

        var length = PeerWire.PrefixLength + headerLength;
        var span = output.GetSpan(length)[..length];
        header.WriteTo(span[PeerWire.PrefixLength..]);
        BinaryPrimitives.WriteUInt32BigEndian(span[PeerWire.MagicOffset..], PeerWire.FrameMagic);
        BinaryPrimitives.WriteUInt32BigEndian(span[PeerWire.HeaderLengthOffset..], (uint)headerLength);
        BinaryPrimitives.WriteUInt32BigEndian(span[PeerWire.PayloadLengthOffset..], (uint)payload.Length);

        var crc = Crc32C.Append(Crc32C.InitialState, span[..PeerWire.CrcCoveredPrefixLength]);
        crc = Crc32C.Append(crc, span[PeerWire.PrefixLength..]);
        BinaryPrimitives.WriteUInt32BigEndian(span[PeerWire.HeaderCrcOffset..], Crc32C.Complete(crc));

        output.Advance(length);
        output.Write(payload);
    }
}

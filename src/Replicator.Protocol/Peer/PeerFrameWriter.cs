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
    /// Stamps <paramref name="header"/>'s payload checksum for <paramref name="payload"/> (0 when there is
    /// none), or, when the payload travels with its <paramref name="blockChecksums"/>, says so instead: those
    /// were computed where the data entered the pair and need no second hash here. Done once per payload,
    /// outside any lock, before the first write.
    /// </summary>
    public static void SealPayload(Envelope header, ReadOnlySpan<byte> payload, ReadOnlySpan<byte> blockChecksums = default)
    {
        if (!blockChecksums.IsEmpty)
        {
            if (payload.Length % PeerWire.BlockChecksumSize != 0 || blockChecksums.Length != payload.Length / PeerWire.BlockChecksumSize * sizeof(ulong))
            {
                throw new ArgumentException($"{blockChecksums.Length} bytes of block checksums do not fit {payload.Length} bytes of data", nameof(blockChecksums));
            }

            header.BlockChecksumSize = PeerWire.BlockChecksumSize;
            header.PayloadChecksum = 0;
            return;
        }

        header.BlockChecksumSize = 0;
        header.PayloadChecksum = payload.IsEmpty ? 0 : ContentHash.Of(payload);
    }

    /// <summary>
    /// Writes one frame. The caller has sealed the payload (<see cref="SealPayload"/>) and
    /// serializes calls: a frame is never interleaved with another.
    /// </summary>
    /// <exception cref="ArgumentException">The header or the payload exceeds <paramref name="limits"/>; nothing was written.</exception>
    public static void WriteFrame(IBufferWriter<byte> output, Envelope header, ReadOnlySpan<byte> payload, PeerFrameLimits limits) =>
        WriteFrame(output, header, payload, default, limits);

    /// <summary>Writes one frame whose payload is <paramref name="payload"/> followed by <paramref name="trailer"/> (its block checksums).</summary>
    public static void WriteFrame(IBufferWriter<byte> output, Envelope header, ReadOnlySpan<byte> payload, ReadOnlySpan<byte> trailer, PeerFrameLimits limits)
    {
        var headerLength = header.CalculateSize();
        if (headerLength > limits.MaxHeaderLength)
        {
            throw new ArgumentException($"The {header.BodyCase} header is {headerLength} bytes, more than the {limits.MaxHeaderLength} bytes a peer accepts.", nameof(header));
        }

        var payloadLength = (long)payload.Length + trailer.Length;
        if (payloadLength > limits.MaxPayloadLength)
        {
            throw new ArgumentException($"The payload is {payloadLength} bytes, more than the {limits.MaxPayloadLength} bytes a peer accepts in one frame.", nameof(payload));
        }

        var length = PeerWire.PrefixLength + headerLength;
        var span = output.GetSpan(length)[..length];
        header.WriteTo(span[PeerWire.PrefixLength..]);
        BinaryPrimitives.WriteUInt32BigEndian(span[PeerWire.MagicOffset..], PeerWire.FrameMagic);
        BinaryPrimitives.WriteUInt32BigEndian(span[PeerWire.HeaderLengthOffset..], (uint)headerLength);
        BinaryPrimitives.WriteUInt32BigEndian(span[PeerWire.PayloadLengthOffset..], (uint)payloadLength);

        var crc = Crc32C.Append(Crc32C.InitialState, span[..PeerWire.CrcCoveredPrefixLength]);
        crc = Crc32C.Append(crc, span[PeerWire.PrefixLength..]);
        BinaryPrimitives.WriteUInt32BigEndian(span[PeerWire.HeaderCrcOffset..], Crc32C.Complete(crc));

        output.Advance(length);
        output.Write(payload);
        output.Write(trailer);
    }
}

using System.Buffers.Binary;
using Replicator.Core.Devices;

namespace Replicator.Protocol.Nbd;

/// <summary>Formats transmission replies into spans. Pure; the reply channel decides when they go out.</summary>
internal static class NbdReplyFormat
{
    /// <summary>
    /// <code>
    ///  0         4         8                 16
    /// +---------+---------+-----------------+------------------------
    /// | magic   | error   | handle          | READ data (on success)
    /// +---------+---------+-----------------+------------------------
    /// </code>
    /// </summary>
    public static void WriteSimpleReply(Span<byte> span, uint error, ulong handle)
    {
        BinaryPrimitives.WriteUInt32BigEndian(span, NbdWire.SimpleReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(span[4..], error);
        BinaryPrimitives.WriteUInt64BigEndian(span[8..], handle);
    }

    /// <summary>
    /// <code>
    ///  0         4       6       8                 16        20
    /// +---------+-------+-------+-----------------+---------+-------------------
    /// | magic   | flags | type  | handle          | length  | payload ...
    /// +---------+-------+-------+-----------------+---------+-------------------
    /// </code>
    /// </summary>
    public static void WriteChunkHeader(Span<byte> span, ushort flags, ushort type, ulong handle, uint length)
    {
        BinaryPrimitives.WriteUInt32BigEndian(span, NbdWire.StructuredReplyMagic);
        BinaryPrimitives.WriteUInt16BigEndian(span[4..], flags);
        BinaryPrimitives.WriteUInt16BigEndian(span[6..], type);
        BinaryPrimitives.WriteUInt64BigEndian(span[8..], handle);
        BinaryPrimitives.WriteUInt32BigEndian(span[16..], length);
    }

    public static int MaxErrorPayloadLength(string message) =>
        NbdWire.ErrorChunkPrefixLength + NbdStrings.MaxEncodedLength(message);

    /// <summary>NBD_REPLY_TYPE_ERROR payload: error (32) | message length (16) | message. Returns its length.</summary>
    public static int WriteErrorPayload(Span<byte> span, uint error, string message)
    {
        var messageLength = NbdStrings.Encode(message, span[NbdWire.ErrorChunkPrefixLength..]);
        BinaryPrimitives.WriteUInt32BigEndian(span, error);
        BinaryPrimitives.WriteUInt16BigEndian(span[4..], (ushort)messageLength);
        return NbdWire.ErrorChunkPrefixLength + messageLength;
    }

    public static int MaxBlockStatusPayloadLength(int extentCount) =>
        4 + (NbdWire.BlockDescriptorLength * Math.Min(extentCount, NbdWire.MaxBlockStatusDescriptors));

    /// <summary>
    /// NBD_REPLY_TYPE_BLOCK_STATUS payload: context id (32), then descriptors of length (32) | status flags (32).
    /// Descriptors are clipped to the request's <paramref name="length"/>, one only for REQ_ONE, and multiples
    /// of <paramref name="alignment"/>: an extent that ends off the alignment ends the list, and when the very
    /// first one is shorter than the alignment one aligned descriptor with status 0 ("allocated, contents
    /// unknown", always true) is sent instead. Returns the payload length, or -1 when the device described
    /// no bytes or an extent of length zero or less.
    /// </summary>
    public static int WriteBlockStatusPayload(
        Span<byte> span, uint contextId, IReadOnlyList<AllocationExtent> extents, uint length, bool reqOne, uint alignment)
    {
        if (extents.Count == 0)
        {
            return -1;
        }

        BinaryPrimitives.WriteUInt32BigEndian(span, contextId);
        var written = 4;
        var remaining = (long)length;
        var count = 0;
        foreach (var extent in extents)
        {
            if (extent.Length <= 0)
            {
                return -1;
            }

            var descriptorLength = Math.Min(extent.Length, remaining);
            var status = ToStatusFlags(extent.State);
            var misaligned = descriptorLength % alignment;
            if (misaligned != 0)
            {
                descriptorLength -= misaligned;
                if (descriptorLength == 0 && count == 0)
                {
                    descriptorLength = Math.Min(alignment, remaining);
                    status = 0;
                }
            }

            if (descriptorLength > 0)
            {
                BinaryPrimitives.WriteUInt32BigEndian(span[written..], (uint)descriptorLength);
                BinaryPrimitives.WriteUInt32BigEndian(span[(written + 4)..], status);
                written += NbdWire.BlockDescriptorLength;
                count++;
                remaining -= descriptorLength;
            }

            if (misaligned != 0 || remaining == 0 || reqOne || count == NbdWire.MaxBlockStatusDescriptors)
            {
                break;
            }
        }

        return written;
    }

    public static uint ToStatusFlags(AllocationState state) =>
        ((state & AllocationState.Hole) != 0 ? NbdWire.StateHole : 0)
        | ((state & AllocationState.Zero) != 0 ? NbdWire.StateZero : 0);
}

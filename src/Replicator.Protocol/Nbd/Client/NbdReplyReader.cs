using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Text;
using Replicator.Core.Devices;

namespace Replicator.Protocol.Nbd.Client;

/// <summary>What a transmission reply, or one chunk of a structured reply, is.</summary>
internal enum NbdReplyType
{
    /// <summary>A simple reply; on success to a READ, the data follows (its length is the request's).</summary>
    Simple,
    /// <summary>NBD_REPLY_TYPE_NONE: the final chunk, no payload.</summary>
    None,
    /// <summary>NBD_REPLY_TYPE_OFFSET_DATA: <see cref="NbdReply.Length"/> bytes of data follow, not consumed.</summary>
    OffsetData,
    /// <summary>NBD_REPLY_TYPE_OFFSET_HOLE: <see cref="NbdReply.Length"/> bytes at <see cref="NbdReply.Offset"/> read as zeros.</summary>
    OffsetHole,
    /// <summary>NBD_REPLY_TYPE_BLOCK_STATUS: descriptors in <see cref="NbdReply.Payload"/>.</summary>
    BlockStatus,
    /// <summary>NBD_REPLY_TYPE_ERROR or ERROR_OFFSET (or an unknown error chunk): <see cref="NbdReply.Error"/> and a message.</summary>
    Error,
}

/// <summary>
/// One reply or chunk as <see cref="NbdReplyReader.TryReadReply"/> parsed it. <see cref="Payload"/> is a slice of
/// the buffer that was read and is valid only until that buffer is advanced past.
/// </summary>
internal readonly record struct NbdReply(
    NbdReplyType Type,
    ulong Cookie,
    bool Done,
    uint Error = 0,
    ulong Offset = 0,
    uint Length = 0,
    uint ContextId = 0,
    bool HasOffset = false,
    ReadOnlySequence<byte> Payload = default)
{
    /// <summary>The message of an error chunk (UTF-8, at most 4096 bytes); empty otherwise.</summary>
    public string Message => Type == NbdReplyType.Error && !Payload.IsEmpty ? Encoding.UTF8.GetString(Payload) : "";
}

/// <summary>A reply the server should not have sent; the connection cannot be trusted after it.</summary>
internal sealed class NbdReplyProtocolException(string message) : Exception(message)
{
    [DoesNotReturn]
    public static void Throw(string message) => throw new NbdReplyProtocolException(message);
}

/// <summary>
/// Pure readers for what an NBD server sends in the transmission phase, the client's side of
/// <see cref="NbdFrameReader"/>. Each returns false when <c>buffer</c> does not yet hold the whole message and
/// then consumes nothing; on success it slices the message off the front. Nothing here allocates. A chunk longer
/// than the client could have asked for is refused from its header, before its payload is buffered.
/// </summary>
internal static class NbdReplyReader
{
    /// <summary>The longest chunk other than OFFSET_DATA accepted: 64 Ki block status descriptors.</summary>
    public const int MaxMetadataChunkLength = 4 + (NbdWire.BlockDescriptorLength * 65536);

    private const int OffsetHoleLength = 8 + 4;

    /// <summary>
    /// A simple reply, or one structured reply chunk:
    /// <code>
    /// simple:      0         4         8                 16
    ///             +---------+---------+-----------------+------------------------------------
    ///             | magic   | error   | cookie          | READ data on success (request length)
    ///             +---------+---------+-----------------+------------------------------------
    /// structured:  0         4       6       8                 16        20
    ///             +---------+-------+-------+-----------------+---------+-------------------
    ///             | magic   | flags | type  | cookie          | length  | payload ...
    ///             +---------+-------+-------+-----------------+---------+-------------------
    /// payloads:   OFFSET_DATA   offset (64) | data ...        (only the offset is consumed)
    ///             OFFSET_HOLE   offset (64) | hole length (32)
    ///             BLOCK_STATUS  context id (32) | n x (length (32) | status flags (32))
    ///             ERROR         error (32) | message length (16) | message
    ///             ERROR_OFFSET  error (32) | message length (16) | message | offset (64)
    ///             NONE          (empty; DONE must be set)
    /// </code>
    /// </summary>
    /// <exception cref="NbdReplyProtocolException">A wrong magic, an unknown chunk type, or a malformed or oversized chunk.</exception>
    public static bool TryReadReply(ref ReadOnlySequence<byte> buffer, out NbdReply reply)
    {
        reply = default;
        Span<byte> scratch = stackalloc byte[NbdWire.StructuredReplyHeaderLength + 8];
        if (!NbdFrameReader.TryPeek(buffer, scratch[..4], out var magicBytes))
        {
            return false;
        }

        var magic = BinaryPrimitives.ReadUInt32BigEndian(magicBytes);
        if (magic == NbdWire.SimpleReplyMagic)
        {
            if (!NbdFrameReader.TryPeek(buffer, scratch[..NbdWire.SimpleReplyLength], out var simple))
            {
                return false;
            }

            reply = new NbdReply(NbdReplyType.Simple, BinaryPrimitives.ReadUInt64BigEndian(simple[8..]), Done: true,
                Error: BinaryPrimitives.ReadUInt32BigEndian(simple[4..]));
            buffer = buffer.Slice(NbdWire.SimpleReplyLength);
            return true;
        }

        if (magic != NbdWire.StructuredReplyMagic)
        {
            NbdReplyProtocolException.Throw($"reply has magic 0x{magic:x8}");
        }

        if (!NbdFrameReader.TryPeek(buffer, scratch[..NbdWire.StructuredReplyHeaderLength], out var header))
        {
            return false;
        }

        var flags = BinaryPrimitives.ReadUInt16BigEndian(header[4..]);
        var type = BinaryPrimitives.ReadUInt16BigEndian(header[6..]);
        var cookie = BinaryPrimitives.ReadUInt64BigEndian(header[8..]);
        var length = BinaryPrimitives.ReadUInt32BigEndian(header[16..]);
        var done = (flags & NbdWire.ReplyFlagDone) != 0;

        if (type == NbdWire.ReplyTypeOffsetData)
        {
            if (length <= 8 || length - 8 > NbdWire.MaximumBlockSize)
            {
                NbdReplyProtocolException.Throw($"OFFSET_DATA chunk of {length} bytes");
            }

            if (!NbdFrameReader.TryPeek(buffer, scratch[..(NbdWire.StructuredReplyHeaderLength + 8)], out var prefix))
            {
                return false;
            }

            reply = new NbdReply(NbdReplyType.OffsetData, cookie, done,
                Offset: BinaryPrimitives.ReadUInt64BigEndian(prefix[NbdWire.StructuredReplyHeaderLength..]), Length: length - 8);
            buffer = buffer.Slice(NbdWire.StructuredReplyHeaderLength + 8);
            return true;
        }

        if (length > MaxMetadataChunkLength)
        {
            NbdReplyProtocolException.Throw($"chunk of type {type} claims {length} bytes");
        }

        if (buffer.Length < NbdWire.StructuredReplyHeaderLength + length)
        {
            return false;
        }

        var payload = buffer.Slice(NbdWire.StructuredReplyHeaderLength, length);
        reply = ParseChunk(type, cookie, done, payload);
        buffer = buffer.Slice(payload.End);
        return true;
    }

    /// <summary>
    /// Appends the descriptors of a BLOCK_STATUS payload for <c>base:allocation</c> to <paramref name="extents"/>,
    /// stopping at <paramref name="limit"/> bytes (a server may describe more than was asked). Returns the bytes described.
    /// </summary>
    public static long AppendExtents(in ReadOnlySequence<byte> descriptors, List<AllocationExtent> extents, long limit)
    {
        var reader = new SequenceReader<byte>(descriptors);
        var described = 0L;
        while (described < limit && reader.TryReadBigEndian(out int rawLength) && reader.TryReadBigEndian(out int status))
        {
            var length = Math.Min((uint)rawLength, limit - described);
            if (length == 0)
            {
                NbdReplyProtocolException.Throw("BLOCK_STATUS descriptor of length 0");
            }

            var state = (((uint)status & NbdWire.StateHole) != 0 ? AllocationState.Hole : AllocationState.Data)
                | (((uint)status & NbdWire.StateZero) != 0 ? AllocationState.Zero : AllocationState.Data);
            extents.Add(new AllocationExtent(length, state));
            described += length;
        }

        return described;
    }

    private static NbdReply ParseChunk(ushort type, ulong cookie, bool done, in ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        switch (type)
        {
            case NbdWire.ReplyTypeNone:
                if (payload.Length != 0 || !done)
                {
                    NbdReplyProtocolException.Throw($"NONE chunk of {payload.Length} bytes{(done ? "" : " without the DONE flag")}");
                }

                return new NbdReply(NbdReplyType.None, cookie, done);

            case NbdWire.ReplyTypeOffsetHole:
                if (payload.Length != OffsetHoleLength)
                {
                    NbdReplyProtocolException.Throw($"OFFSET_HOLE chunk of {payload.Length} bytes");
                }

                reader.TryReadBigEndian(out long holeOffset);
                reader.TryReadBigEndian(out int holeLength);
                if (holeLength == 0)
                {
                    NbdReplyProtocolException.Throw("OFFSET_HOLE chunk of an empty hole");
                }

                return new NbdReply(NbdReplyType.OffsetHole, cookie, done, Offset: (ulong)holeOffset, Length: (uint)holeLength);

            case NbdWire.ReplyTypeBlockStatus:
                if (payload.Length < 4 + NbdWire.BlockDescriptorLength || (payload.Length - 4) % NbdWire.BlockDescriptorLength != 0)
                {
                    NbdReplyProtocolException.Throw($"BLOCK_STATUS chunk of {payload.Length} bytes");
                }

                reader.TryReadBigEndian(out int contextId);
                return new NbdReply(NbdReplyType.BlockStatus, cookie, done, ContextId: (uint)contextId, Payload: payload.Slice(4));

            default:
                if ((type & NbdWire.ReplyTypeErrorFlag) == 0)
                {
                    NbdReplyProtocolException.Throw($"chunk of unknown type {type}");
                }

                return ParseError(type, cookie, done, payload);
        }
    }

    /// <summary>ERROR, ERROR_OFFSET and error types this client does not know (bit 15 set), which still start with error and message.</summary>
    private static NbdReply ParseError(ushort type, ulong cookie, bool done, in ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        if (payload.Length < NbdWire.ErrorChunkPrefixLength)
        {
            NbdReplyProtocolException.Throw($"error chunk of {payload.Length} bytes");
        }

        reader.TryReadBigEndian(out int error);
        reader.TryReadBigEndian(out short rawMessageLength);

        var messageLength = (ushort)rawMessageLength;
        var expected = NbdWire.ErrorChunkPrefixLength + messageLength + (type == NbdWire.ReplyTypeErrorOffset ? 8 : 0);
        if (messageLength > NbdWire.MaxStringLength || (type is NbdWire.ReplyTypeError or NbdWire.ReplyTypeErrorOffset
            ? payload.Length != expected
            : payload.Length < expected))
        {
            NbdReplyProtocolException.Throw($"error chunk of {payload.Length} bytes with a message of {messageLength}");
        }

        if (error == 0)
        {
            NbdReplyProtocolException.Throw("error chunk with error value 0");
        }

        var message = payload.Slice(NbdWire.ErrorChunkPrefixLength, messageLength);
        ulong offset = 0;
        var hasOffset = type == NbdWire.ReplyTypeErrorOffset;
        if (hasOffset)
        {
            reader.Advance(messageLength);
            reader.TryReadBigEndian(out long rawOffset);
            offset = (ulong)rawOffset;
        }

        return new NbdReply(NbdReplyType.Error, cookie, done, Error: (uint)error, Offset: offset, HasOffset: hasOffset, Payload: message);
    }
}

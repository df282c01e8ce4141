using System.Buffers;
using System.Buffers.Binary;

namespace Replicator.Protocol.Nbd.Client;

/// <summary>The fixed part of a server's reply to an option.</summary>
internal readonly record struct NbdOptionReplyHeader(uint Option, uint ReplyType, uint Length)
{
    public bool IsError => (ReplyType & NbdWire.RepFlagError) != 0;
}

/// <summary>
/// Pure readers and writers for the client's side of the fixed newstyle handshake. Readers return false when the
/// buffer does not yet hold the whole message and then consume nothing.
/// </summary>
internal static class NbdHandshakeMessages
{
    /// <summary>Option reply data above this is a server this client will not trust (the longest legitimate one is a pair of strings).</summary>
    public const int MaxOptionReplyLength = 64 * 1024;

    /// <summary>
    /// The server's greeting:
    /// <code>
    /// NBDMAGIC (64) | IHAVEOPT (64) | handshake flags (16)
    /// </code>
    /// </summary>
    /// <exception cref="NbdReplyProtocolException">Not an NBD server, or an oldstyle one.</exception>
    public static bool TryReadGreeting(ref ReadOnlySequence<byte> buffer, out ushort handshakeFlags)
    {
        handshakeFlags = 0;
        Span<byte> scratch = stackalloc byte[NbdWire.GreetingLength];
        if (!NbdFrameReader.TryPeek(buffer, scratch, out var bytes))
        {
            return false;
        }

        if (BinaryPrimitives.ReadUInt64BigEndian(bytes) != NbdWire.InitPassword)
        {
            NbdReplyProtocolException.Throw("the server did not greet with NBDMAGIC; it is not an NBD server");
        }

        if (BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]) != NbdWire.OptionMagic)
        {
            NbdReplyProtocolException.Throw("the server speaks the oldstyle handshake; only fixed newstyle is supported");
        }

        handshakeFlags = BinaryPrimitives.ReadUInt16BigEndian(bytes[16..]);
        buffer = buffer.Slice(NbdWire.GreetingLength);
        return true;
    }

    /// <summary>
    /// One option reply:
    /// <code>
    /// reply magic (64) | option (32) | reply type (32) | length (32) | data ...
    /// </code>
    /// </summary>
    /// <exception cref="NbdReplyProtocolException">The magic is wrong or the data is longer than <see cref="MaxOptionReplyLength"/>.</exception>
    public static bool TryReadOptionReply(ref ReadOnlySequence<byte> buffer, out NbdOptionReplyHeader header, out ReadOnlySequence<byte> data)
    {
        header = default;
        data = default;
        Span<byte> scratch = stackalloc byte[NbdWire.OptionReplyHeaderLength];
        if (!NbdFrameReader.TryPeek(buffer, scratch, out var bytes))
        {
            return false;
        }

        var magic = BinaryPrimitives.ReadUInt64BigEndian(bytes);
        if (magic != NbdWire.OptionReplyMagic)
        {
            NbdReplyProtocolException.Throw($"option reply has magic 0x{magic:x16}");
        }

        var parsed = new NbdOptionReplyHeader(
            BinaryPrimitives.ReadUInt32BigEndian(bytes[8..]),
            BinaryPrimitives.ReadUInt32BigEndian(bytes[12..]),
            BinaryPrimitives.ReadUInt32BigEndian(bytes[16..]));
        if (parsed.Length > MaxOptionReplyLength)
        {
            NbdReplyProtocolException.Throw($"option reply of {parsed.Length} bytes");
        }

        if (buffer.Length < NbdWire.OptionReplyHeaderLength + (long)parsed.Length)
        {
            return false;
        }

        header = parsed;
        data = buffer.Slice(NbdWire.OptionReplyHeaderLength, parsed.Length);
        buffer = buffer.Slice(data.End);
        return true;
    }

    /// <summary>Client flags: fixed newstyle always, no-zeroes when the server offers it.</summary>
    public static void WriteClientFlags(IBufferWriter<byte> writer, ushort handshakeFlags)
    {
        var flags = NbdWire.ClientFlagFixedNewstyle
            | ((handshakeFlags & NbdWire.FlagNoZeroes) != 0 ? NbdWire.ClientFlagNoZeroes : 0);
        BinaryPrimitives.WriteUInt32BigEndian(writer.GetSpan(NbdWire.ClientFlagsLength), flags);
        writer.Advance(NbdWire.ClientFlagsLength);
    }

    /// <summary>An option without data (STRUCTURED_REPLY, ABORT): IHAVEOPT (64) | option (32) | length 0 (32).</summary>
    public static void WriteOption(IBufferWriter<byte> writer, uint option) => WriteOptionHeader(writer, option, 0);

    /// <summary>NBD_OPT_GO: name length (32) | name | request count (16) | requests (16 each).</summary>
    public static void WriteGo(IBufferWriter<byte> writer, string exportName, ReadOnlySpan<ushort> infoRequests)
    {
        var nameLength = NbdStrings.MaxEncodedLength(exportName);
        var span = writer.GetSpan(NbdWire.OptionHeaderLength + 4 + nameLength + 2 + (2 * infoRequests.Length));
        var body = span[NbdWire.OptionHeaderLength..];
        nameLength = NbdStrings.Encode(exportName, body[4..]);
        BinaryPrimitives.WriteUInt32BigEndian(body, (uint)nameLength);
        var position = 4 + nameLength;
        BinaryPrimitives.WriteUInt16BigEndian(body[position..], (ushort)infoRequests.Length);
        position += 2;
        foreach (var request in infoRequests)
        {
            BinaryPrimitives.WriteUInt16BigEndian(body[position..], request);
            position += 2;
        }

        FillOptionHeader(span, NbdWire.OptGo, (uint)position);
        writer.Advance(NbdWire.OptionHeaderLength + position);
    }

    /// <summary>NBD_OPT_SET_META_CONTEXT: name length (32) | name | query count (32) | (query length (32) | query) each.</summary>
    public static void WriteSetMetaContext(IBufferWriter<byte> writer, string exportName, string query)
    {
        var span = writer.GetSpan(NbdWire.OptionHeaderLength + 4 + NbdStrings.MaxEncodedLength(exportName) + 8 + NbdStrings.MaxEncodedLength(query));
        var body = span[NbdWire.OptionHeaderLength..];
        var nameLength = NbdStrings.Encode(exportName, body[4..]);
        BinaryPrimitives.WriteUInt32BigEndian(body, (uint)nameLength);
        var position = 4 + nameLength;
        BinaryPrimitives.WriteUInt32BigEndian(body[position..], 1);
        var queryLength = NbdStrings.Encode(query, body[(position + 8)..]);
        BinaryPrimitives.WriteUInt32BigEndian(body[(position + 4)..], (uint)queryLength);
        position += 8 + queryLength;
        FillOptionHeader(span, NbdWire.OptSetMetaContext, (uint)position);
        writer.Advance(NbdWire.OptionHeaderLength + position);
    }

    private static void WriteOptionHeader(IBufferWriter<byte> writer, uint option, uint length)
    {
        FillOptionHeader(writer.GetSpan(NbdWire.OptionHeaderLength), option, length);
        writer.Advance(NbdWire.OptionHeaderLength);
    }

    private static void FillOptionHeader(Span<byte> span, uint option, uint length)
    {
        BinaryPrimitives.WriteUInt64BigEndian(span, NbdWire.OptionMagic);
        BinaryPrimitives.WriteUInt32BigEndian(span[8..], option);
        BinaryPrimitives.WriteUInt32BigEndian(span[12..], length);
    }
}

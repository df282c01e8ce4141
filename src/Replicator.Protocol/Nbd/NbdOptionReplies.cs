using System.Buffers;
using System.Buffers.Binary;

namespace Replicator.Protocol.Nbd;

/// <summary>Formats what the server sends during the handshake into a buffer writer (a PipeWriter).</summary>
internal static class NbdOptionReplies
{
    /// <summary>
    /// <code>
    /// NBDMAGIC (64) | IHAVEOPT (64) | handshake flags (16)
    /// </code>
    /// </summary>
    public static void WriteGreeting(IBufferWriter<byte> writer)
    {
        var span = writer.GetSpan(NbdWire.GreetingLength);
        BinaryPrimitives.WriteUInt64BigEndian(span, NbdWire.InitPassword);
        BinaryPrimitives.WriteUInt64BigEndian(span[8..], NbdWire.OptionMagic);
        BinaryPrimitives.WriteUInt16BigEndian(span[16..], NbdWire.FlagFixedNewstyle | NbdWire.FlagNoZeroes);
        writer.Advance(NbdWire.GreetingLength);
    }

    /// <summary>
    /// The reply to NBD_OPT_EXPORT_NAME: export size (64) | transmission flags (16) | 124 zeroes unless NO_ZEROES.
    /// </summary>
    public static void WriteExportNameReply(IBufferWriter<byte> writer, ulong size, ushort transmissionFlags, bool noZeroes)
    {
        var length = NbdWire.ExportNameReplyLength + (noZeroes ? 0 : NbdWire.ExportNameReplyZeroes);
        var span = writer.GetSpan(length)[..length];
        BinaryPrimitives.WriteUInt64BigEndian(span, size);
        BinaryPrimitives.WriteUInt16BigEndian(span[8..], transmissionFlags);
        span[NbdWire.ExportNameReplyLength..].Clear();
        writer.Advance(length);
    }

    /// <summary>A reply without data (NBD_REP_ACK).</summary>
    public static void WriteAck(IBufferWriter<byte> writer, uint option)
    {
        FillHeader(writer.GetSpan(NbdWire.OptionReplyHeaderLength), option, NbdWire.RepAck, 0);
        writer.Advance(NbdWire.OptionReplyHeaderLength);
    }

    /// <summary>An error reply carrying a message for the user.</summary>
    public static void WriteError(IBufferWriter<byte> writer, uint option, uint replyType, string message)
    {
        var span = writer.GetSpan(NbdWire.OptionReplyHeaderLength + NbdStrings.MaxEncodedLength(message));
        var length = NbdStrings.Encode(message, span[NbdWire.OptionReplyHeaderLength..]);
        FillHeader(span, option, replyType, (uint)length);
        writer.Advance(NbdWire.OptionReplyHeaderLength + length);
    }

    /// <summary>NBD_REP_SERVER: name length (32) | name | description.</summary>
    public static void WriteServer(IBufferWriter<byte> writer, uint option, string name, string description)
    {
        var prefix = NbdWire.OptionReplyHeaderLength + 4;
        var span = writer.GetSpan(prefix + NbdStrings.MaxEncodedLength(name) + NbdStrings.MaxEncodedLength(description));
        var nameLength = NbdStrings.Encode(name, span[prefix..]);
        var descriptionLength = NbdStrings.Encode(description, span[(prefix + nameLength)..]);
        FillHeader(span, option, NbdWire.RepServer, (uint)(4 + nameLength + descriptionLength));
        BinaryPrimitives.WriteUInt32BigEndian(span[NbdWire.OptionReplyHeaderLength..], (uint)nameLength);
        writer.Advance(prefix + nameLength + descriptionLength);
    }

    /// <summary>NBD_REP_INFO / NBD_INFO_EXPORT: type (16) | size (64) | transmission flags (16).</summary>
    public static void WriteInfoExport(IBufferWriter<byte> writer, uint option, ulong size, ushort transmissionFlags)
    {
        var span = WriteHeader(writer, option, NbdWire.RepInfo, 12);
        BinaryPrimitives.WriteUInt16BigEndian(span, NbdWire.InfoExport);
        BinaryPrimitives.WriteUInt64BigEndian(span[2..], size);
        BinaryPrimitives.WriteUInt16BigEndian(span[10..], transmissionFlags);
        writer.Advance(12);
    }

    /// <summary>NBD_REP_INFO / NBD_INFO_BLOCK_SIZE: type (16) | minimum (32) | preferred (32) | maximum (32).</summary>
    public static void WriteInfoBlockSize(IBufferWriter<byte> writer, uint option, uint minimum, uint preferred, uint maximum)
    {
        var span = WriteHeader(writer, option, NbdWire.RepInfo, 14);
        BinaryPrimitives.WriteUInt16BigEndian(span, NbdWire.InfoBlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(span[2..], minimum);
        BinaryPrimitives.WriteUInt32BigEndian(span[6..], preferred);
        BinaryPrimitives.WriteUInt32BigEndian(span[10..], maximum);
        writer.Advance(14);
    }

    /// <summary>NBD_REP_INFO carrying a string: NBD_INFO_NAME or NBD_INFO_DESCRIPTION.</summary>
    public static void WriteInfoString(IBufferWriter<byte> writer, uint option, ushort infoType, string value)
    {
        var prefix = NbdWire.OptionReplyHeaderLength + 2;
        var span = writer.GetSpan(prefix + NbdStrings.MaxEncodedLength(value));
        var length = NbdStrings.Encode(value, span[prefix..]);
        FillHeader(span, option, NbdWire.RepInfo, (uint)(2 + length));
        BinaryPrimitives.WriteUInt16BigEndian(span[NbdWire.OptionReplyHeaderLength..], infoType);
        writer.Advance(prefix + length);
    }

    /// <summary>NBD_REP_META_CONTEXT: context id (32) | name.</summary>
    public static void WriteMetaContext(IBufferWriter<byte> writer, uint option, uint contextId, string name)
    {
        var prefix = NbdWire.OptionReplyHeaderLength + 4;
        var span = writer.GetSpan(prefix + NbdStrings.MaxEncodedLength(name));
        var length = NbdStrings.Encode(name, span[prefix..]);
        FillHeader(span, option, NbdWire.RepMetaContext, (uint)(4 + length));
        BinaryPrimitives.WriteUInt32BigEndian(span[NbdWire.OptionReplyHeaderLength..], contextId);
        writer.Advance(prefix + length);
    }

    /// <summary>Writes the reply header and returns the span for its <paramref name="length"/> data bytes (not yet advanced).</summary>
    private static Span<byte> WriteHeader(IBufferWriter<byte> writer, uint option, uint replyType, int length)
    {
        var span = writer.GetSpan(NbdWire.OptionReplyHeaderLength + length);
        FillHeader(span, option, replyType, (uint)length);
        writer.Advance(NbdWire.OptionReplyHeaderLength);
        return writer.GetSpan(length);
    }

    /// <summary>
    /// <code>
    /// reply magic (64) | option (32) | reply type (32) | data length (32)
    /// </code>
    /// </summary>
    private static void FillHeader(Span<byte> span, uint option, uint replyType, uint length)
    {
        BinaryPrimitives.WriteUInt64BigEndian(span, NbdWire.OptionReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(span[8..], option);
        BinaryPrimitives.WriteUInt32BigEndian(span[12..], replyType);
        BinaryPrimitives.WriteUInt32BigEndian(span[16..], length);
    }
}

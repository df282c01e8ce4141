using System.Buffers.Binary;
using System.Text;
using Replicator.Protocol.Nbd;

namespace Replicator.Protocol.Tests.Nbd.Client;

/// <summary>Encodes what a server sends, written from the spec and independent of the code under test.</summary>
internal static class NbdReplyBytes
{
    public static byte[] Simple(ulong cookie, uint error = 0, byte[]? data = null)
    {
        var bytes = new byte[16 + (data?.Length ?? 0)];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, NbdWire.SimpleReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(4), error);
        BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(8), cookie);
        data?.CopyTo(bytes, 16);
        return bytes;
    }

    public static byte[] Chunk(ulong cookie, ushort type, byte[] payload, bool done = true, uint? claimedLength = null)
    {
        var bytes = new byte[20 + payload.Length];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, NbdWire.StructuredReplyMagic);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(4), done ? NbdWire.ReplyFlagDone : (ushort)0);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(6), type);
        BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(8), cookie);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(16), claimedLength ?? (uint)payload.Length);
        payload.CopyTo(bytes, 20);
        return bytes;
    }

    public static byte[] OffsetData(ulong cookie, ulong offset, byte[] data, bool done = true) =>
        Chunk(cookie, NbdWire.ReplyTypeOffsetData, [.. U64(offset), .. data], done);

    public static byte[] OffsetHole(ulong cookie, ulong offset, uint length, bool done = true) =>
        Chunk(cookie, NbdWire.ReplyTypeOffsetHole, [.. U64(offset), .. U32(length)], done);

    public static byte[] BlockStatus(ulong cookie, uint contextId, params (uint Length, uint Status)[] descriptors) =>
        Chunk(cookie, NbdWire.ReplyTypeBlockStatus, [.. U32(contextId), .. descriptors.SelectMany(d => U32(d.Length).Concat(U32(d.Status)))]);

    public static byte[] Error(ulong cookie, uint error, string message, bool done = true, ulong? offset = null, ushort? type = null)
    {
        var text = Encoding.UTF8.GetBytes(message);
        byte[] payload = [.. U32(error), .. U16((ushort)text.Length), .. text, .. offset is { } o ? U64(o) : []];
        return Chunk(cookie, type ?? (offset is null ? NbdWire.ReplyTypeError : NbdWire.ReplyTypeErrorOffset), payload, done);
    }

    public static byte[] None(ulong cookie) => Chunk(cookie, NbdWire.ReplyTypeNone, []);

    public static byte[] Greeting(ushort flags = NbdWire.FlagFixedNewstyle | NbdWire.FlagNoZeroes, ulong secondMagic = NbdWire.OptionMagic) =>
        [.. U64(NbdWire.InitPassword), .. U64(secondMagic), .. U16(flags)];

    public static byte[] OptionReply(uint option, uint type, byte[]? data = null, ulong magic = NbdWire.OptionReplyMagic) =>
        [.. U64(magic), .. U32(option), .. U32(type), .. U32((uint)(data?.Length ?? 0)), .. data ?? []];

    public static byte[] U16(ushort value)
    {
        var bytes = new byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(bytes, value);
        return bytes;
    }

    public static byte[] U32(uint value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        return bytes;
    }

    public static byte[] U64(ulong value)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, value);
        return bytes;
    }
}

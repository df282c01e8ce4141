using System.Buffers.Binary;
using System.Text;
using Replicator.Protocol.Nbd;

namespace Replicator.Protocol.Tests.Nbd.Support;

/// <summary>
/// Encodes client messages the way a client puts them on the wire. Also compiled into the fuzzing harness, so no
/// test framework here: the assertions are in NbdBytes.Asserts.cs.
/// </summary>
internal static partial class NbdBytes
{
    public static byte[] ClientFlags(uint flags)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, flags);
        return bytes;
    }

    public static byte[] Option(uint option, byte[]? data = null, ulong magic = NbdWire.OptionMagic) =>
        OptionHeader(option, (uint)(data?.Length ?? 0), magic).Concat(data ?? []).ToArray();

    public static byte[] OptionHeader(uint option, uint length, ulong magic = NbdWire.OptionMagic)
    {
        var bytes = new byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, magic);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(12), length);
        return bytes;
    }

    /// <summary>Data of NBD_OPT_INFO / NBD_OPT_GO.</summary>
    public static byte[] InfoData(string name, params ushort[] requests)
    {
        var nameBytes = Encoding.UTF8.GetBytes(name);
        var bytes = new byte[4 + nameBytes.Length + 2 + (2 * requests.Length)];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, (uint)nameBytes.Length);
        nameBytes.CopyTo(bytes, 4);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(4 + nameBytes.Length), (ushort)requests.Length);
        for (var i = 0; i < requests.Length; i++)
        {
            BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(4 + nameBytes.Length + 2 + (2 * i)), requests[i]);
        }

        return bytes;
    }

    /// <summary>Data of NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT.</summary>
    public static byte[] MetaContextData(string name, params string[] queries)
    {
        var parts = new List<byte>();
        AddString(parts, name);
        parts.AddRange(U32(queries.Length));
        foreach (var query in queries)
        {
            AddString(parts, query);
        }

        return [.. parts];
    }

    public static byte[] Request(ushort type, ulong offset = 0, uint length = 0, ushort flags = 0, ulong handle = 1, byte[]? payload = null, uint magic = NbdWire.RequestMagic)
    {
        var bytes = new byte[28 + (payload?.Length ?? 0)];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, magic);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(4), flags);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(6), type);
        BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(8), handle);
        BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(16), offset);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(24), length);
        payload?.CopyTo(bytes, 28);
        return bytes;
    }

    public static byte[] U32(int value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, (uint)value);
        return bytes;
    }

    public static byte[] Pattern(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static void AddString(List<byte> parts, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        parts.AddRange(U32(bytes.Length));
        parts.AddRange(bytes);
    }
}

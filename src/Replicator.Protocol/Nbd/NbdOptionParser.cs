using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using System.Text.Unicode;

namespace Replicator.Protocol.Nbd;

/// <summary>The information items a client asked for in NBD_OPT_INFO or NBD_OPT_GO.</summary>
[Flags]
internal enum NbdInfoRequests
{
    None = 0,
    Name = 1,
    Description = 2,
    BlockSize = 4,
}

/// <summary>A parsed NBD_OPT_INFO / NBD_OPT_GO.</summary>
internal readonly record struct NbdInfoOption(string ExportName, NbdInfoRequests Requests);

/// <summary>A parsed NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT.</summary>
internal sealed record NbdMetaContextOption(string ExportName, IReadOnlyList<string> Queries);

/// <summary>
/// Pure parsers for the data of the options that carry some. Each returns null and an error message
/// (the text of an NBD_REP_ERR_INVALID reply) when the data is malformed. Counts and lengths read from
/// the wire are checked against the bytes actually present before anything is sized from them.
/// </summary>
internal static class NbdOptionParser
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>NBD_OPT_EXPORT_NAME: the whole data is the name.</summary>
    public static string? ParseExportName(in ReadOnlySequence<byte> data, out string? error)
    {
        var reader = new SequenceReader<byte>(data);
        return TryReadString(ref reader, (int)Math.Min(data.Length, int.MaxValue), "export name", out var name, out error)
            ? name
            : null;
    }

    /// <summary>
    /// NBD_OPT_INFO and NBD_OPT_GO:
    /// <code>
    /// 32 bits name length | name | 16 bits count n | n x 16 bits information request
    /// </code>
    /// </summary>
    public static NbdInfoOption? ParseInfo(in ReadOnlySequence<byte> data, out string? error)
    {
        var reader = new SequenceReader<byte>(data);
        if (!TryReadLength(ref reader, "export name", out var nameLength, out error)
            || !TryReadString(ref reader, nameLength, "export name", out var name, out error))
        {
            return null;
        }

        if (!reader.TryReadBigEndian(out short rawCount))
        {
            error = "option data ends before the number of information requests";
            return null;
        }

        var count = (ushort)rawCount;
        if (reader.Remaining != count * 2L)
        {
            error = $"{count} information requests need {count * 2} bytes but {reader.Remaining} remain";
            return null;
        }

        var requests = NbdInfoRequests.None;
        for (var i = 0; i < count; i++)
        {
            reader.TryReadBigEndian(out short item);
            requests |= (ushort)item switch
            {
                NbdWire.InfoName => NbdInfoRequests.Name,
                NbdWire.InfoDescription => NbdInfoRequests.Description,
                NbdWire.InfoBlockSize => NbdInfoRequests.BlockSize,
                _ => NbdInfoRequests.None,
            };
        }

        return new NbdInfoOption(name!, requests);
    }

    /// <summary>
    /// NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT:
    /// <code>
    /// 32 bits name length | name | 32 bits query count n | n x (32 bits query length | query)
    /// </code>
    /// Every query must start with a namespace and a colon.
    /// </summary>
    public static NbdMetaContextOption? ParseMetaContext(in ReadOnlySequence<byte> data, out string? error)
    {
        var reader = new SequenceReader<byte>(data);
        if (!TryReadLength(ref reader, "export name", out var nameLength, out error)
            || !TryReadString(ref reader, nameLength, "export name", out var name, out error))
        {
            return null;
        }

        if (!reader.TryReadBigEndian(out int rawCount))
        {
            error = "option data ends before the number of queries";
            return null;
        }

        var count = (uint)rawCount;
        var queries = new List<string>();
        for (var i = 0u; i < count; i++)
        {
            if (!TryReadLength(ref reader, "query", out var queryLength, out error)
                || !TryReadString(ref reader, queryLength, "query", out var query, out error))
            {
                return null;
            }

            if (query!.IndexOf(':', StringComparison.Ordinal) <= 0)
            {
                error = $"query '{query}' does not start with a namespace and a colon";
                return null;
            }

            queries.Add(query);
        }

        if (reader.Remaining != 0)
        {
            error = $"{reader.Remaining} bytes follow the last query";
            return null;
        }

        return new NbdMetaContextOption(name!, queries);
    }

    private static bool TryReadLength(ref SequenceReader<byte> reader, string what, out int length, out string? error)
    {
        if (!reader.TryReadBigEndian(out int raw))
        {
            length = 0;
            error = $"option data ends before the {what} length";
            return false;
        }

        var value = (uint)raw;
        if (value > reader.Remaining)
        {
            length = 0;
            error = $"{what} length {value} exceeds the {reader.Remaining} bytes left in the option";
            return false;
        }

        length = (int)value;
        error = null;
        return true;
    }

    /// <summary>A protocol string: UTF-8, no NUL, at most 4096 bytes.</summary>
    private static bool TryReadString(ref SequenceReader<byte> reader, int length, string what, out string? value, out string? error)
    {
        value = null;
        if (length > NbdWire.MaxStringLength)
        {
            error = $"{what} is {length} bytes, more than the {NbdWire.MaxStringLength} allowed";
            return false;
        }

        Span<byte> bytes = stackalloc byte[length];
        if (!reader.TryCopyTo(bytes))
        {
            error = $"option data ends inside the {what}";
            return false;
        }

        reader.Advance(length);
        if (!Utf8.IsValid(bytes) || bytes.Contains((byte)0))
        {
            error = $"{what} is not valid UTF-8 without NUL characters";
            return false;
        }

        value = StrictUtf8.GetString(bytes);
        error = null;
        return true;
    }
}

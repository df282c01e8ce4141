using System.Buffers;
using System.Buffers.Binary;

namespace Replicator.Protocol.Nbd;

/// <summary>
/// Pure readers for what an NBD client sends. Each returns false when <paramref name="buffer"/> does not
/// yet hold the whole message and then consumes nothing; on success it slices the message off the front
/// of the buffer. Nothing here allocates.
/// </summary>
internal static class NbdFrameReader
{
    /// <summary>
    /// Client flags, the client's first message:
    /// <code>
    ///  0               4
    /// +---------------+
    /// | client flags  |
    /// +---------------+
    /// </code>
    /// </summary>
    public static bool TryReadClientFlags(ref ReadOnlySequence<byte> buffer, out uint flags)
    {
        Span<byte> scratch = stackalloc byte[NbdWire.ClientFlagsLength];
        if (!TryPeek(buffer, scratch, out var bytes))
        {
            flags = 0;
            return false;
        }

        flags = BinaryPrimitives.ReadUInt32BigEndian(bytes);
        buffer = buffer.Slice(NbdWire.ClientFlagsLength);
        return true;
    }

    /// <summary>
    /// One option of the handshake:
    /// <code>
    ///  0                               8               12              16
    /// +-------------------------------+---------------+---------------+------------------
    /// | IHAVEOPT (0x49484156454F5054) | option        | data length   | data ...
    /// +-------------------------------+---------------+---------------+------------------
    /// </code>
    /// When the data length exceeds <paramref name="maxDataLength"/> only the header is consumed and
    /// <paramref name="data"/> is empty, so the caller refuses the option and skips the data without
    /// ever buffering what the length claims.
    /// </summary>
    /// <exception cref="NbdProtocolException">The magic is wrong.</exception>
    public static bool TryReadOption(
        ref ReadOnlySequence<byte> buffer, int maxDataLength, out NbdOptionHeader header, out ReadOnlySequence<byte> data)
    {
        Span<byte> scratch = stackalloc byte[NbdWire.OptionHeaderLength];
        if (!TryPeek(buffer, scratch, out var bytes))
        {
            header = default;
            data = default;
            return false;
        }

        var magic = BinaryPrimitives.ReadUInt64BigEndian(bytes);
        if (magic != NbdWire.OptionMagic)
        {
            NbdProtocolException.ThrowInvalidMagic("option", magic);
        }

        header = new NbdOptionHeader(
            BinaryPrimitives.ReadUInt32BigEndian(bytes[8..]),
            BinaryPrimitives.ReadUInt32BigEndian(bytes[12..]));

        if (header.Length > (uint)maxDataLength)
        {
            data = default;
            buffer = buffer.Slice(NbdWire.OptionHeaderLength);
            return true;
        }

        var total = NbdWire.OptionHeaderLength + (long)header.Length;
        if (buffer.Length < total)
        {
            data = default;
            return false;
        }

        data = buffer.Slice(NbdWire.OptionHeaderLength, header.Length);
        buffer = buffer.Slice(total);
        return true;
    }

    /// <summary>
    /// One transmission request header:
    /// <code>
    ///  0         4       6       8               16              24        28
    /// +---------+-------+-------+---------------+---------------+---------+-------------------
    /// | magic   | flags | type  | handle        | offset        | length  | WRITE payload ...
    /// +---------+-------+-------+---------------+---------------+---------+-------------------
    /// </code>
    /// Only the 28-byte header is consumed; a WRITE's payload is left in the buffer for the caller,
    /// who streams it out with <see cref="ReadPayload"/> so a 32 MiB write is never buffered twice.
    /// </summary>
    /// <exception cref="NbdProtocolException">The magic is wrong.</exception>
    public static bool TryReadRequest(ref ReadOnlySequence<byte> buffer, out NbdRequest request)
    {
        Span<byte> scratch = stackalloc byte[NbdWire.RequestHeaderLength];
        if (!TryPeek(buffer, scratch, out var bytes))
        {
            request = default;
            return false;
        }

        var magic = BinaryPrimitives.ReadUInt32BigEndian(bytes);
        if (magic != NbdWire.RequestMagic)
        {
            NbdProtocolException.ThrowInvalidMagic("request", magic);
        }

        request = new NbdRequest(
            Flags: BinaryPrimitives.ReadUInt16BigEndian(bytes[4..]),
            Type: BinaryPrimitives.ReadUInt16BigEndian(bytes[6..]),
            Handle: BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]),
            Offset: BinaryPrimitives.ReadUInt64BigEndian(bytes[16..]),
            Length: BinaryPrimitives.ReadUInt32BigEndian(bytes[24..]));
        buffer = buffer.Slice(NbdWire.RequestHeaderLength);
        return true;
    }

    /// <summary>
    /// Moves as much of a payload as <paramref name="buffer"/> holds (at most <paramref name="destination"/>'s
    /// length) into <paramref name="destination"/>, slicing it off the buffer. Returns the bytes moved.
    /// </summary>
    public static int ReadPayload(ref ReadOnlySequence<byte> buffer, Span<byte> destination)
    {
        var count = (int)Math.Min(buffer.Length, destination.Length);
        var payload = buffer.Slice(0, count);
        payload.CopyTo(destination);
        buffer = buffer.Slice(payload.End);
        return count;
    }

    /// <summary>Skips up to <paramref name="remaining"/> bytes; returns how many were skipped.</summary>
    public static long Skip(ref ReadOnlySequence<byte> buffer, long remaining)
    {
        var count = Math.Min(buffer.Length, remaining);
        buffer = buffer.Slice(count);
        return count;
    }

    /// <summary>The first <c>scratch.Length</c> bytes, without copying when they lie in one segment.</summary>
    internal static bool TryPeek(in ReadOnlySequence<byte> buffer, Span<byte> scratch, out ReadOnlySpan<byte> bytes)
    {
        var first = buffer.FirstSpan;
        if (first.Length >= scratch.Length)
        {
            bytes = first[..scratch.Length];
            return true;
        }

        if (buffer.Length < scratch.Length)
        {
            bytes = default;
            return false;
        }

        buffer.Slice(0, scratch.Length).CopyTo(scratch);
        bytes = scratch;
        return true;
    }
}

using System.Text;
using System.Text.Unicode;

namespace Replicator.Protocol.Nbd;

/// <summary>Encodes protocol strings: UTF-8, cut at a character boundary to the 4096-byte limit.</summary>
internal static class NbdStrings
{
    public static int MaxEncodedLength(string value) =>
        Math.Min(Encoding.UTF8.GetMaxByteCount(value.Length), NbdWire.MaxStringLength);

    /// <summary>Writes <paramref name="value"/> into <paramref name="destination"/>; returns the bytes written.</summary>
    public static int Encode(string value, Span<byte> destination)
    {
        var limit = destination[..Math.Min(destination.Length, NbdWire.MaxStringLength)];
        Utf8.FromUtf16(value, limit, out _, out var written, replaceInvalidSequences: true, isFinalBlock: true);
        return written;
    }
}

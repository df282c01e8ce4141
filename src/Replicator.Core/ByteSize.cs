using System.Globalization;

namespace Replicator.Core;

/// <summary>Sizes as people write them: <c>1G</c>, <c>512MiB</c>, <c>4096</c>. Binary units (1K = 1024).</summary>
public static class ByteSize
{
    private static readonly (string Suffix, int Shift)[] s_units =
    [
        ("TIB", 40), ("TB", 40), ("T", 40),
        ("GIB", 30), ("GB", 30), ("G", 30),
        ("MIB", 20), ("MB", 20), ("M", 20),
        ("KIB", 10), ("KB", 10), ("K", 10),
        ("B", 0),
    ];

    public static bool TryParse(string? text, out long bytes)
    {
        bytes = 0;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        var s = text.Trim().ToUpperInvariant();
        var shift = 0;
        foreach (var (suffix, unitShift) in s_units)
        {
            if (s.EndsWith(suffix, StringComparison.Ordinal))
            {
                s = s[..^suffix.Length].TrimEnd();
                shift = unitShift;
                break;
            }
        }

        if (!decimal.TryParse(s, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value) || value < 0)
        {
            return false;
        }

        try
        {
            var result = value * (1L << shift);
            if (result != decimal.Truncate(result) || result > long.MaxValue)
            {
                return false;
            }

            bytes = (long)result;
            return true;
        }
        catch (OverflowException)
        {
            return false;
        }
    }

    public static long Parse(string text) =>
        TryParse(text, out var bytes)
            ? bytes
            : throw new FormatException($"'{text}' is not a size; write it like 1G, 512M, 64K or a number of bytes");

    /// <summary>Formats with the largest binary unit that keeps the value readable: <c>1 GiB</c>, <c>1.5 MiB</c>.</summary>
    public static string Format(long bytes)
    {
        string[] names = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        double value = bytes;
        var i = 0;
        while (Math.Abs(value) >= 1024 && i < names.Length - 1)
        {
            value /= 1024;
            i++;
        }

        return i == 0
            ? string.Create(CultureInfo.InvariantCulture, $"{bytes} B")
            : string.Create(CultureInfo.InvariantCulture, $"{value:0.##} {names[i]}");
    }
}

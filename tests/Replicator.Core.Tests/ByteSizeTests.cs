namespace Replicator.Core.Tests;

public class ByteSizeTests
{
    [Theory]
    [InlineData("4096", 4096L)]
    [InlineData("1G", 1L << 30)]
    [InlineData("1g", 1L << 30)]
    [InlineData("1GiB", 1L << 30)]
    [InlineData("512M", 512L << 20)]
    [InlineData("1.5K", 1536L)]
    [InlineData("16T", 16L << 40)]
    [InlineData(" 64 KiB ", 64L << 10)]
    public void Parses_sizes_people_write(string text, long expected) => Assert.Equal(expected, ByteSize.Parse(text));

    [Theory]
    [InlineData("")]
    [InlineData("abc")]
    [InlineData("-1G")]
    [InlineData("1.3B")]
    [InlineData("99999999999T")]
    [InlineData("1X")]
    public void Refuses_what_is_not_a_size(string text)
    {
        Assert.False(ByteSize.TryParse(text, out _));
        var e = Assert.Throws<FormatException>(() => ByteSize.Parse(text));
        Assert.Contains("not a size", e.Message);
    }

    [Theory]
    [InlineData(0L, "0 B")]
    [InlineData(1L << 30, "1 GiB")]
    [InlineData(1536L << 20, "1.5 GiB")]
    public void Formats_readably(long bytes, string expected) => Assert.Equal(expected, ByteSize.Format(bytes));
}

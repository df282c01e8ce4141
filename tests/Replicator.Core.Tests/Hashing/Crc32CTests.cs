using System.Buffers;
using System.Text;
using Replicator.Core.Hashing;

namespace Replicator.Core.Tests.Hashing;

public sealed class Crc32CTests
{
    /// <summary>Check values of CRC-32/ISCSI (the catalogue's "check" over "123456789") and RFC 3720 appendix B.4.</summary>
    [Theory]
    [InlineData("", 0x00000000u)]
    [InlineData("123456789", 0xE3069283u)]
    public void Matches_the_catalogue_check_values(string text, uint expected)
    {
        Assert.Equal(expected, Crc32C.Compute(Encoding.ASCII.GetBytes(text)));
    }

    [Fact]
    public void Matches_the_iscsi_test_patterns()
    {
        Assert.Equal(0x8A9136AAu, Crc32C.Compute(new byte[32]));
        Assert.Equal(0x62A8AB43u, Crc32C.Compute(Enumerable.Repeat((byte)0xFF, 32).ToArray()));
        Assert.Equal(0x46DD794Eu, Crc32C.Compute(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray()));
        Assert.Equal(0x113FDB5Cu, Crc32C.Compute(Enumerable.Range(0, 32).Select(i => (byte)(31 - i)).ToArray()));
    }

    [Fact]
    public void A_sequence_in_any_segments_gives_the_span_result()
    {
        var data = Enumerable.Range(0, 61).Select(i => (byte)(i * 7)).ToArray();
        var expected = Crc32C.Compute(data);

        for (var split = 0; split <= data.Length; split++)
        {
            var first = new Segment(data.AsMemory(0, split));
            var last = first.Append(data.AsMemory(split));
            var sequence = new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
            Assert.True(expected == Crc32C.Compute(sequence), $"split at {split}");
        }
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory) => Memory = memory;

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory) { RunningIndex = RunningIndex + Memory.Length };
            Next = next;
            return next;
        }
    }
}

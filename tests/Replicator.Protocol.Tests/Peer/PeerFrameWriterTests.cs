using System.Buffers;
using Replicator.Core.Hashing;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Tests.Peer;

public sealed class PeerFrameWriterTests
{
    [Fact]
    public void Sealing_stamps_the_xxh64_of_the_payload_and_zero_without_one()
    {
        var payload = PeerFrameSamples.Blocks(1000);
        var header = PeerFrameSamples.Write(1000);

        PeerFrameWriter.SealPayload(header, payload);
        Assert.Equal(System.IO.Hashing.XxHash3.HashToUInt64(payload), header.PayloadChecksum);

        PeerFrameWriter.SealPayload(header, []);
        Assert.Equal(0UL, header.PayloadChecksum);
    }

    [Fact]
    public void A_header_over_the_limit_is_refused_and_nothing_is_written()
    {
        var writer = new ArrayBufferWriter<byte>();
        var header = new Envelope { Refused = new Refused { Reason = new string('x', 200) } };

        var exception = Assert.Throws<ArgumentException>(() => PeerFrameWriter.WriteFrame(writer, header, [], new PeerFrameLimits(100, 100)));

        Assert.Contains("more than the 100 bytes", exception.Message, StringComparison.Ordinal);
        Assert.Equal(0, writer.WrittenCount);
    }

    [Fact]
    public void A_payload_over_the_limit_is_refused_and_nothing_is_written()
    {
        var writer = new ArrayBufferWriter<byte>();

        var exception = Assert.Throws<ArgumentException>(() => PeerFrameWriter.WriteFrame(writer, PeerFrameSamples.Write(101), new byte[101], new PeerFrameLimits(100, 100)));

        Assert.Contains("101 bytes", exception.Message, StringComparison.Ordinal);
        Assert.Equal(0, writer.WrittenCount);
    }
}

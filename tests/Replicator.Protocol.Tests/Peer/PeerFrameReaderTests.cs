using System.Buffers;
using System.Buffers.Binary;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Tests.Peer;

public sealed class PeerFrameReaderTests
{
    [Theory]
    [MemberData(nameof(PeerFrameSamples.Names), MemberType = typeof(PeerFrameSamples))]
    public void Reads_back_what_the_writer_wrote(string sample)
    {
        var (header, payload) = PeerFrameSamples.Get(sample);
        var bytes = PeerFrameSamples.Encode(header, payload);

        AssertParses(new ReadOnlySequence<byte>(bytes), header, payload);
    }

    [Theory]
    [MemberData(nameof(PeerFrameSamples.Names), MemberType = typeof(PeerFrameSamples))]
    public void A_frame_split_at_any_byte_parses_the_same(string sample)
    {
        var (header, payload) = PeerFrameSamples.Get(sample);
        var bytes = PeerFrameSamples.Encode(header, payload);

        for (var split = 0; split <= bytes.Length; split++)
        {
            AssertParses(SegmentedSequence.SplitAt(bytes, split), header, payload);
        }
    }

    [Theory]
    [MemberData(nameof(PeerFrameSamples.Names), MemberType = typeof(PeerFrameSamples))]
    public void A_frame_in_one_byte_segments_parses_the_same(string sample)
    {
        var (header, payload) = PeerFrameSamples.Get(sample);
        var bytes = PeerFrameSamples.Encode(header, payload);

        AssertParses(SegmentedSequence.BytePerSegment(bytes), header, payload);
    }

    [Theory]
    [MemberData(nameof(PeerFrameSamples.Names), MemberType = typeof(PeerFrameSamples))]
    public void Every_prefix_of_a_frame_needs_more_data_and_consumes_nothing(string sample)
    {
        var (header, payload) = PeerFrameSamples.Get(sample);
        var bytes = PeerFrameSamples.Encode(header, payload);

        for (var length = 0; length < bytes.Length; length++)
        {
            var buffer = new ReadOnlySequence<byte>(bytes, 0, length);
            var before = buffer;

            Assert.False(PeerFrameReader.TryReadFrame(ref buffer, PeerFrameLimits.Default, out _), $"prefix of {length} bytes");
            Assert.Equal(before.Length, buffer.Length);
            Assert.Equal(before.Start, buffer.Start);
        }
    }

    [Fact]
    public void Frames_back_to_back_are_read_one_at_a_time_leaving_the_next_one_partial()
    {
        var first = PeerFrameSamples.Encode(PeerFrameSamples.Write(100), PeerFrameSamples.Blocks(100, seed: 1));
        var second = PeerFrameSamples.Encode(new Envelope { RequestId = 2, Flush = new FlushRequest() }, []);
        var third = PeerFrameSamples.Encode(PeerFrameSamples.Write(50, offset: 0), PeerFrameSamples.Blocks(50, seed: 2));
        var buffer = new ReadOnlySequence<byte>([.. first, .. second, .. third[..20]]);

        Assert.True(PeerFrameReader.TryReadFrame(ref buffer, PeerFrameLimits.Default, out var a));
        Assert.True(PeerFrameReader.TryReadFrame(ref buffer, PeerFrameLimits.Default, out var b));
        Assert.False(PeerFrameReader.TryReadFrame(ref buffer, PeerFrameLimits.Default, out _));

        Assert.Equal(Envelope.BodyOneofCase.Write, a.Header.BodyCase);
        Assert.Equal(PeerFrameSamples.Blocks(100, seed: 1), a.Payload!.Memory.ToArray());
        Assert.Equal(Envelope.BodyOneofCase.Flush, b.Header.BodyCase);
        Assert.Null(b.Payload);
        Assert.Equal(20, buffer.Length);
        a.Payload.Dispose();
    }

    [Fact]
    public void The_payload_is_a_copy_that_outlives_the_received_bytes()
    {
        var data = PeerFrameSamples.Blocks(4096);
        var bytes = PeerFrameSamples.Encode(PeerFrameSamples.Write(4096), data);
        var buffer = new ReadOnlySequence<byte>(bytes);

        Assert.True(PeerFrameReader.TryReadFrame(ref buffer, PeerFrameLimits.Default, out var frame));
        Array.Clear(bytes);

        using var payload = frame.Payload!;
        Assert.Equal(data, payload.Memory.ToArray());
        Assert.Equal(4096, payload.Length);
    }

    [Fact]
    public void The_wire_layout_is_the_one_drawn_in_the_reader()
    {
        var payload = PeerFrameSamples.Blocks(10);
        var header = PeerFrameSamples.Write(10);
        var bytes = PeerFrameSamples.Encode(header, payload);
        var headerLength = header.CalculateSize();

        Assert.Equal("RPLP"u8.ToArray(), bytes[..4]);
        Assert.Equal((uint)headerLength, BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(4)));
        Assert.Equal(10u, BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(8)));
        Assert.Equal(Google.Protobuf.MessageExtensions.ToByteArray(header), bytes[16..(16 + headerLength)]);
        Assert.Equal(payload, bytes[(16 + headerLength)..]);
    }

    /// <summary>One row per malformed input: the bytes, the <see cref="PeerProtocolError"/> the reader must report, and a phrase its message must contain.</summary>
    public static TheoryData<string, byte[], string, string> MalformedFrames()
    {
        var valid = PeerFrameSamples.Encode(PeerFrameSamples.Write(64), PeerFrameSamples.Blocks(64));

        var badMagic = (byte[])valid.Clone();
        badMagic[0] = (byte)'X';

        var nbdMagic = (byte[])valid.Clone();
        BinaryPrimitives.WriteUInt64BigEndian(nbdMagic, 0x4e42444d41474943);

        var headerTooLarge = valid[..16];
        BinaryPrimitives.WriteUInt32BigEndian(headerTooLarge.AsSpan(4), PeerWire.DefaultMaxHeaderLength + 1);

        var payloadTooLarge = valid[..16];
        BinaryPrimitives.WriteUInt32BigEndian(payloadTooLarge.AsSpan(8), PeerWire.DefaultMaxPayloadLength + 1);

        var hugeLengths = valid[..16];
        BinaryPrimitives.WriteUInt32BigEndian(hugeLengths.AsSpan(8), uint.MaxValue);

        var flippedHeaderBit = (byte[])valid.Clone();
        flippedHeaderBit[PeerWire.PrefixLength + 3] ^= 0x10;

        var damagedCrc = (byte[])valid.Clone();
        damagedCrc[PeerWire.HeaderCrcOffset] ^= 0xFF;

        var shiftedLength = (byte[])valid.Clone();
        BinaryPrimitives.WriteUInt32BigEndian(shiftedLength.AsSpan(8), 63);

        return new TheoryData<string, byte[], string, string>
        {
            { "bad magic", badMagic, nameof(PeerProtocolError.BadMagic), "magic" },
            { "an NBD client on the peer port", nbdMagic, nameof(PeerProtocolError.BadMagic), "not a Replicator peer" },
            { "header over the limit", headerTooLarge, nameof(PeerProtocolError.HeaderTooLarge), "exceeds the limit of 65536" },
            { "payload over the limit", payloadTooLarge, nameof(PeerProtocolError.PayloadTooLarge), $"exceeds the limit of {PeerWire.DefaultMaxPayloadLength}" },
            { "payload length 4 GiB", hugeLengths, nameof(PeerProtocolError.PayloadTooLarge), "4294967295" },
            { "a header bit flipped", flippedHeaderBit, nameof(PeerProtocolError.HeaderChecksumMismatch), "CRC32C" },
            { "the header CRC damaged", damagedCrc, nameof(PeerProtocolError.HeaderChecksumMismatch), "damaged in transit" },
            { "the payload length damaged", shiftedLength, nameof(PeerProtocolError.HeaderChecksumMismatch), "CRC32C" },
            { "header is not protobuf", PeerFrameSamples.EncodeRawHeader([0xFF, 0xFF, 0xFF]), nameof(PeerProtocolError.MalformedHeader), "not a valid Envelope" },
            { "header truncated inside a field", PeerFrameSamples.EncodeRawHeader(PeerFrameSamples.ToBytes(PeerFrameSamples.Hello())[..20]), nameof(PeerProtocolError.MalformedHeader), "not a valid Envelope" },
            { "header with a length past its end", PeerFrameSamples.EncodeRawHeader([0x52, 0x7F, 0x01]), nameof(PeerProtocolError.MalformedHeader), "not a valid Envelope" },
        };
    }

    [Theory]
    [MemberData(nameof(MalformedFrames))]
    public void A_malformed_frame_is_a_clear_error(string description, byte[] bytes, string expected, string phrase)
    {
        foreach (var buffer in new[] { new ReadOnlySequence<byte>(bytes), SegmentedSequence.BytePerSegment(bytes) })
        {
            var input = buffer;
            var exception = Assert.Throws<PeerProtocolException>(() => PeerFrameReader.TryReadFrame(ref input, PeerFrameLimits.Default, out _));

            Assert.True(expected == exception.Error.ToString(), $"{description}: {exception.Error}: {exception.Message}");
            Assert.Contains(phrase, exception.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void An_oversized_frame_is_refused_from_its_prefix_alone()
    {
        var prefix = PeerFrameSamples.Encode(PeerFrameSamples.Write(10), PeerFrameSamples.Blocks(10))[..PeerWire.PrefixLength];
        var limits = new PeerFrameLimits(MaxHeaderLength: 1024, MaxPayloadLength: 9);
        var buffer = new ReadOnlySequence<byte>(prefix);

        var exception = Assert.Throws<PeerProtocolException>(() => PeerFrameReader.TryReadFrame(ref buffer, limits, out _));

        Assert.Equal(PeerProtocolError.PayloadTooLarge, exception.Error);
    }

    private static void AssertParses(ReadOnlySequence<byte> buffer, Envelope header, byte[] payload)
    {
        Assert.True(PeerFrameReader.TryReadFrame(ref buffer, PeerFrameLimits.Default, out var frame));

        Assert.True(buffer.IsEmpty);
        Assert.Equal(header, frame.Header);
        Assert.Equal(payload.Length, frame.PayloadLength);
        if (payload.Length == 0)
        {
            Assert.Null(frame.Payload);
        }
        else
        {
            Assert.Equal(payload, frame.Payload!.Memory.ToArray());
            frame.Payload.Dispose();
        }
    }
}

using System.Buffers;
using Replicator.Protocol.Nbd;
using Replicator.Protocol.Tests.Nbd.Support;

namespace Replicator.Protocol.Tests.Nbd;

public class NbdFrameReaderTests
{
    [Theory]
    [MemberData(nameof(NbdSamples.OptionNames), MemberType = typeof(NbdSamples))]
    public void EveryPrefixOfAnOptionNeedsMoreDataAndConsumesNothing(string name)
    {
        var bytes = NbdSamples.Options[name];
        for (var length = 0; length < bytes.Length; length++)
        {
            var buffer = new ReadOnlySequence<byte>(bytes, 0, length);
            Assert.False(NbdFrameReader.TryReadOption(ref buffer, NbdWire.MaxOptionDataLength, out _, out _), $"prefix of {length} bytes");
            Assert.Equal(length, buffer.Length);
        }
    }

    [Theory]
    [MemberData(nameof(NbdSamples.RequestNames), MemberType = typeof(NbdSamples))]
    public void EveryPrefixOfARequestHeaderNeedsMoreDataAndConsumesNothing(string name)
    {
        var bytes = NbdSamples.Requests[name];
        for (var length = 0; length < NbdWire.RequestHeaderLength; length++)
        {
            var buffer = new ReadOnlySequence<byte>(bytes, 0, length);
            Assert.False(NbdFrameReader.TryReadRequest(ref buffer, out _), $"prefix of {length} bytes");
            Assert.Equal(length, buffer.Length);
        }
    }

    [Fact]
    public void EveryPrefixOfTheClientFlagsNeedsMoreDataAndConsumesNothing()
    {
        var bytes = NbdBytes.ClientFlags(3);
        for (var length = 0; length < bytes.Length; length++)
        {
            var buffer = new ReadOnlySequence<byte>(bytes, 0, length);
            Assert.False(NbdFrameReader.TryReadClientFlags(ref buffer, out _));
            Assert.Equal(length, buffer.Length);
        }

        var whole = new ReadOnlySequence<byte>(bytes);
        Assert.True(NbdFrameReader.TryReadClientFlags(ref whole, out var flags));
        Assert.Equal(3u, flags);
        Assert.True(whole.IsEmpty);
    }

    [Theory]
    [MemberData(nameof(NbdSamples.OptionNames), MemberType = typeof(NbdSamples))]
    public void AnOptionSplitOneBytePerSegmentParsesAsTheWholeBuffer(string name)
    {
        var bytes = NbdSamples.Options[name];
        var whole = new ReadOnlySequence<byte>(bytes);
        var split = Sequences.BytePerSegment(bytes);

        Assert.True(NbdFrameReader.TryReadOption(ref whole, NbdWire.MaxOptionDataLength, out var wholeHeader, out var wholeData));
        Assert.True(NbdFrameReader.TryReadOption(ref split, NbdWire.MaxOptionDataLength, out var splitHeader, out var splitData));

        Assert.Equal(wholeHeader, splitHeader);
        Assert.Equal(wholeData.ToArray(), splitData.ToArray());
        Assert.Equal(bytes.Length - 16, (int)wholeHeader.Length);
        Assert.Equal(bytes[16..], splitData.ToArray());
        Assert.True(whole.IsEmpty);
        Assert.True(split.IsEmpty);
    }

    [Theory]
    [MemberData(nameof(NbdSamples.RequestNames), MemberType = typeof(NbdSamples))]
    public void ARequestSplitOneBytePerSegmentParsesAsTheWholeBuffer(string name)
    {
        var bytes = NbdSamples.Requests[name];
        var whole = new ReadOnlySequence<byte>(bytes);
        var split = Sequences.BytePerSegment(bytes);

        Assert.True(NbdFrameReader.TryReadRequest(ref whole, out var wholeRequest));
        Assert.True(NbdFrameReader.TryReadRequest(ref split, out var splitRequest));

        Assert.Equal(wholeRequest, splitRequest);
        Assert.Equal(bytes.Length - NbdWire.RequestHeaderLength, (int)wholeRequest.PayloadLength);
        Assert.Equal(wholeRequest.PayloadLength, whole.Length);
        Assert.Equal(wholeRequest.PayloadLength, split.Length);
    }

    [Fact]
    public void TheRequestHeaderFieldsAreReadBigEndian()
    {
        var buffer = new ReadOnlySequence<byte>(NbdSamples.Requests["read"]);

        Assert.True(NbdFrameReader.TryReadRequest(ref buffer, out var request));

        Assert.Equal(new NbdRequest(0, NbdWire.CmdRead, 0x0102030405060708, 4096, 512), request);
    }

    [Fact]
    public void AWritePayloadStreamedOneBytePerSegmentArrivesWhole()
    {
        var payload = NbdBytes.Pattern(100, 7);
        var buffer = Sequences.BytePerSegment(payload);
        var destination = new byte[payload.Length];
        var filled = 0;

        while (filled < destination.Length)
        {
            var before = buffer.Length;
            var moved = NbdFrameReader.ReadPayload(ref buffer, destination.AsSpan(filled, Math.Min(7, destination.Length - filled)));
            Assert.Equal(before - moved, buffer.Length);
            filled += moved;
        }

        Assert.Equal(payload, destination);
        Assert.True(buffer.IsEmpty);
    }

    [Fact]
    public void MessagesBackToBackParseInOrder()
    {
        var bytes = NbdSamples.Requests["write"].Concat(NbdSamples.Requests["flush"]).Concat(NbdSamples.Requests["disc"]).ToArray();
        var buffer = Sequences.BytePerSegment(bytes);

        Assert.True(NbdFrameReader.TryReadRequest(ref buffer, out var write));
        var payload = new byte[write.PayloadLength];
        Assert.Equal(payload.Length, NbdFrameReader.ReadPayload(ref buffer, payload));
        Assert.True(NbdFrameReader.TryReadRequest(ref buffer, out var flush));
        Assert.True(NbdFrameReader.TryReadRequest(ref buffer, out var disc));

        Assert.Equal(NbdBytes.Pattern(16, 3), payload);
        Assert.Equal(NbdWire.CmdFlush, flush.Type);
        Assert.Equal(NbdWire.CmdDisc, disc.Type);
        Assert.True(buffer.IsEmpty);
    }

    [Fact]
    public void OptionDataOverTheLimitIsNotWaitedForOnlyTheHeaderIsConsumed()
    {
        var bytes = NbdBytes.OptionHeader(NbdWire.OptGo, NbdWire.MaxOptionDataLength + 1).Concat(new byte[10]).ToArray();
        var buffer = new ReadOnlySequence<byte>(bytes);

        Assert.True(NbdFrameReader.TryReadOption(ref buffer, NbdWire.MaxOptionDataLength, out var header, out var data));

        Assert.Equal(new NbdOptionHeader(NbdWire.OptGo, NbdWire.MaxOptionDataLength + 1), header);
        Assert.True(data.IsEmpty);
        Assert.Equal(10, buffer.Length);
    }

    [Fact]
    public void OptionDataAtTheLimitIsWaitedForWhole()
    {
        var bytes = NbdBytes.Option(NbdWire.OptGo, new byte[NbdWire.MaxOptionDataLength]);
        var partial = new ReadOnlySequence<byte>(bytes, 0, bytes.Length - 1);
        var whole = new ReadOnlySequence<byte>(bytes);

        Assert.False(NbdFrameReader.TryReadOption(ref partial, NbdWire.MaxOptionDataLength, out _, out _));
        Assert.True(NbdFrameReader.TryReadOption(ref whole, NbdWire.MaxOptionDataLength, out _, out var data));
        Assert.Equal(NbdWire.MaxOptionDataLength, data.Length);
    }

    public static TheoryData<string, byte[]> MalformedMessages() => new()
    {
        { "option with the request magic", NbdBytes.Option(NbdWire.OptGo, magic: NbdWire.RequestMagic) },
        { "option with NBDMAGIC", NbdBytes.Option(NbdWire.OptList, magic: NbdWire.InitPassword) },
        { "request with the reply magic", NbdBytes.Request(NbdWire.CmdRead, magic: NbdWire.SimpleReplyMagic) },
        { "request with the historic magic", NbdBytes.Request(NbdWire.CmdRead, magic: 0x12560953) },
        { "request with zero magic", NbdBytes.Request(NbdWire.CmdWrite, magic: 0) },
    };

    [Theory]
    [MemberData(nameof(MalformedMessages))]
    public void AWrongMagicEndsTheConnection(string name, byte[] bytes)
    {
        var isOption = name.StartsWith("option", StringComparison.Ordinal);
        var exception = Assert.Throws<NbdProtocolException>(() =>
        {
            var buffer = Sequences.BytePerSegment(bytes);
            _ = isOption
                ? NbdFrameReader.TryReadOption(ref buffer, NbdWire.MaxOptionDataLength, out _, out _)
                : NbdFrameReader.TryReadRequest(ref buffer, out _);
        });

        Assert.Equal(NbdConnectionEndReason.InvalidMagic, exception.Reason);
    }
}

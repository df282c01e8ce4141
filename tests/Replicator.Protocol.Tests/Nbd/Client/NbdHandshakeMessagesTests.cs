using System.Buffers;
using System.IO.Pipelines;
using Replicator.Protocol.Nbd;
using Replicator.Protocol.Nbd.Client;
using Replicator.Protocol.Tests.Nbd.Support;

namespace Replicator.Protocol.Tests.Nbd.Client;

public class NbdHandshakeMessagesTests
{
    [Fact]
    public void EveryPrefixOfTheGreetingNeedsMoreDataAndOneBytePerSegmentParses()
    {
        var bytes = NbdReplyBytes.Greeting();
        for (var length = 0; length < bytes.Length; length++)
        {
            var prefix = new ReadOnlySequence<byte>(bytes, 0, length);
            Assert.False(NbdHandshakeMessages.TryReadGreeting(ref prefix, out _));
            Assert.Equal(length, prefix.Length);
        }

        var split = Sequences.BytePerSegment(bytes);
        Assert.True(NbdHandshakeMessages.TryReadGreeting(ref split, out var flags));
        Assert.Equal(NbdWire.FlagFixedNewstyle | NbdWire.FlagNoZeroes, flags);
        Assert.True(split.IsEmpty);
    }

    [Theory]
    [InlineData(0x00420281861253ul)]
    [InlineData(0x4242424242424242ul)]
    public void AnOldstyleServerIsRefused(ulong secondMagic)
    {
        var buffer = new ReadOnlySequence<byte>(NbdReplyBytes.Greeting(secondMagic: secondMagic));
        Assert.Throws<NbdReplyProtocolException>(() => NbdHandshakeMessages.TryReadGreeting(ref buffer, out _));
    }

    [Fact]
    public void EveryPrefixOfAnOptionReplyNeedsMoreDataAndOneBytePerSegmentParses()
    {
        var bytes = NbdReplyBytes.OptionReply(NbdWire.OptGo, NbdWire.RepInfo, [0, 3, 1, 2, 3, 4]);
        for (var length = 0; length < bytes.Length; length++)
        {
            var prefix = new ReadOnlySequence<byte>(bytes, 0, length);
            Assert.False(NbdHandshakeMessages.TryReadOptionReply(ref prefix, out _, out _));
            Assert.Equal(length, prefix.Length);
        }

        var split = Sequences.BytePerSegment(bytes);
        Assert.True(NbdHandshakeMessages.TryReadOptionReply(ref split, out var header, out var data));
        Assert.Equal(new NbdOptionReplyHeader(NbdWire.OptGo, NbdWire.RepInfo, 6), header);
        Assert.Equal([0, 3, 1, 2, 3, 4], data.ToArray());
    }

    [Fact]
    public void AnOptionReplyWithAWrongMagicOrAnOversizedLengthIsRefusedFromItsHeader()
    {
        var wrongMagic = new ReadOnlySequence<byte>(NbdReplyBytes.OptionReply(NbdWire.OptGo, NbdWire.RepAck, magic: 1));
        Assert.Throws<NbdReplyProtocolException>(() => NbdHandshakeMessages.TryReadOptionReply(ref wrongMagic, out _, out _));

        var header = NbdReplyBytes.OptionReply(NbdWire.OptGo, NbdWire.RepInfo)[..16].Concat(NbdReplyBytes.U32(1 << 20)).ToArray();
        var oversized = new ReadOnlySequence<byte>(header);
        Assert.Throws<NbdReplyProtocolException>(() => NbdHandshakeMessages.TryReadOptionReply(ref oversized, out _, out _));
    }

    [Fact]
    public void TheOptionsTheClientWritesAreWhatTheServersParserReads()
    {
        var pipe = new Pipe();
        NbdHandshakeMessages.WriteGo(pipe.Writer, "vol-ü", [NbdWire.InfoBlockSize]);
        NbdHandshakeMessages.WriteSetMetaContext(pipe.Writer, "vol-ü", NbdWire.BaseAllocation);
        NbdHandshakeMessages.WriteOption(pipe.Writer, NbdWire.OptStructuredReply);
        pipe.Writer.Complete();
        Assert.True(pipe.Reader.TryRead(out var result));
        var buffer = result.Buffer;

        Assert.True(NbdFrameReader.TryReadOption(ref buffer, NbdWire.MaxOptionDataLength, out var go, out var goData));
        Assert.Equal(NbdWire.OptGo, go.Option);
        Assert.Equal(new NbdInfoOption("vol-ü", NbdInfoRequests.BlockSize), NbdOptionParser.ParseInfo(goData, out _));

        Assert.True(NbdFrameReader.TryReadOption(ref buffer, NbdWire.MaxOptionDataLength, out var meta, out var metaData));
        Assert.Equal(NbdWire.OptSetMetaContext, meta.Option);
        var parsed = NbdOptionParser.ParseMetaContext(metaData, out var error);
        Assert.True(parsed is not null, error);
        Assert.Equal("vol-ü", parsed.ExportName);
        Assert.Equal([NbdWire.BaseAllocation], parsed.Queries);

        Assert.True(NbdFrameReader.TryReadOption(ref buffer, NbdWire.MaxOptionDataLength, out var structured, out var empty));
        Assert.Equal((NbdWire.OptStructuredReply, 0L), (structured.Option, empty.Length));
        Assert.True(buffer.IsEmpty);
    }
}

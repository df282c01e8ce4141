using System.Buffers;
using Replicator.Core.Devices;
using Replicator.Protocol.Nbd;
using Replicator.Protocol.Nbd.Client;
using Replicator.Protocol.Tests.Nbd.Support;
using Reply = Replicator.Protocol.Nbd.Client.NbdReply;

namespace Replicator.Protocol.Tests.Nbd.Client;

public class NbdReplyReaderTests
{
    /// <summary>Valid replies: the bytes on the wire, and how many of them the reader consumes (OFFSET_DATA leaves its data).</summary>
    internal static readonly IReadOnlyDictionary<string, (byte[] Bytes, int Consumed)> Samples = new Dictionary<string, (byte[], int)>
    {
        ["simple"] = Whole(NbdReplyBytes.Simple(0x0102030405060708)),
        ["simple-error"] = Whole(NbdReplyBytes.Simple(7, NbdWire.EPerm)),
        ["simple-read"] = (NbdReplyBytes.Simple(8, data: [1, 2, 3, 4]), 16),
        ["offset-data"] = (NbdReplyBytes.OffsetData(9, 4096, [9, 8, 7], done: false), 28),
        ["offset-hole"] = Whole(NbdReplyBytes.OffsetHole(10, 8192, 512)),
        ["block-status"] = Whole(NbdReplyBytes.BlockStatus(11, 1, (4096, 3), (512, 0))),
        ["error"] = Whole(NbdReplyBytes.Error(12, NbdWire.EIo, "disk on fire")),
        ["error-offset"] = Whole(NbdReplyBytes.Error(13, NbdWire.EIo, "bad sector", offset: 1536)),
        ["error-unknown-type"] = Whole(NbdReplyBytes.Error(14, NbdWire.ENoMem, "", type: NbdWire.ReplyTypeErrorFlag | 42)),
        ["none"] = Whole(NbdReplyBytes.None(15)),
    };

    public static TheoryData<string> SampleNames() => [.. Samples.Keys];

    public static TheoryData<string, byte[]> Malformed() => new()
    {
        { "wrong magic", NbdReplyBytes.U32(0x12345678).Concat(new byte[16]).ToArray() },
        { "OFFSET_DATA without data", NbdReplyBytes.Chunk(1, NbdWire.ReplyTypeOffsetData, NbdReplyBytes.U64(0)) },
        { "OFFSET_DATA over 32 MiB", NbdReplyBytes.Chunk(1, NbdWire.ReplyTypeOffsetData, NbdReplyBytes.U64(0), claimedLength: 8 + NbdWire.MaximumBlockSize + 1) },
        { "metadata chunk over the limit", NbdReplyBytes.Chunk(1, NbdWire.ReplyTypeBlockStatus, [], claimedLength: NbdReplyReader.MaxMetadataChunkLength + 1) },
        { "NONE without DONE", NbdReplyBytes.Chunk(1, NbdWire.ReplyTypeNone, [], done: false) },
        { "NONE with a payload", NbdReplyBytes.Chunk(1, NbdWire.ReplyTypeNone, [0]) },
        { "OFFSET_HOLE too short", NbdReplyBytes.Chunk(1, NbdWire.ReplyTypeOffsetHole, new byte[11]) },
        { "OFFSET_HOLE of nothing", NbdReplyBytes.OffsetHole(1, 0, 0) },
        { "BLOCK_STATUS without descriptors", NbdReplyBytes.BlockStatus(1, 1) },
        { "BLOCK_STATUS with half a descriptor", NbdReplyBytes.Chunk(1, NbdWire.ReplyTypeBlockStatus, new byte[8]) },
        { "ERROR shorter than its prefix", NbdReplyBytes.Chunk(1, NbdWire.ReplyTypeError, new byte[5]) },
        { "ERROR message longer than the chunk", NbdReplyBytes.Chunk(1, NbdWire.ReplyTypeError, [.. NbdReplyBytes.U32(5), .. NbdReplyBytes.U16(10), 65]) },
        { "ERROR with bytes after the message", NbdReplyBytes.Chunk(1, NbdWire.ReplyTypeError, [.. NbdReplyBytes.U32(5), .. NbdReplyBytes.U16(1), 65, 66]) },
        { "ERROR_OFFSET without its offset", NbdReplyBytes.Error(1, NbdWire.EIo, "x", type: NbdWire.ReplyTypeErrorOffset) },
        { "ERROR with error value 0", NbdReplyBytes.Error(1, 0, "fine?") },
        { "unknown chunk type", NbdReplyBytes.Chunk(1, 42, []) },
    };

    [Theory]
    [MemberData(nameof(SampleNames))]
    public void EveryPrefixOfAReplyNeedsMoreDataAndConsumesNothing(string name)
    {
        var (bytes, consumed) = Samples[name];
        for (var length = 0; length < consumed; length++)
        {
            var buffer = new ReadOnlySequence<byte>(bytes, 0, length);
            Assert.False(NbdReplyReader.TryReadReply(ref buffer, out _), $"prefix of {length} bytes");
            Assert.Equal(length, buffer.Length);
        }
    }

    [Theory]
    [MemberData(nameof(SampleNames))]
    public void AReplySplitOneBytePerSegmentParsesAsInOneSegment(string name)
    {
        var (bytes, consumed) = Samples[name];
        var whole = new ReadOnlySequence<byte>(bytes);
        var split = Sequences.BytePerSegment(bytes);

        Assert.True(NbdReplyReader.TryReadReply(ref whole, out var expected));
        Assert.True(NbdReplyReader.TryReadReply(ref split, out var actual));

        Assert.Equal(bytes.Length - consumed, whole.Length);
        Assert.Equal(bytes.Length - consumed, split.Length);
        Assert.Equal(expected with { Payload = default }, actual with { Payload = default });
        Assert.Equal(expected.Payload.ToArray(), actual.Payload.ToArray());
    }

    [Fact]
    public void EachKindOfReplyCarriesItsFields()
    {
        Assert.Equal(new Reply(NbdReplyType.Simple, 7, Done: true, Error: NbdWire.EPerm), Read("simple-error"));
        Assert.Equal(new Reply(NbdReplyType.OffsetData, 9, Done: false, Offset: 4096, Length: 3), Read("offset-data"));
        Assert.Equal(new Reply(NbdReplyType.OffsetHole, 10, Done: true, Offset: 8192, Length: 512), Read("offset-hole"));
        Assert.Equal(new Reply(NbdReplyType.None, 15, Done: true), Read("none"));

        var status = Read("block-status");
        Assert.Equal((NbdReplyType.BlockStatus, 11ul, 1u, 16L), (status.Type, status.Cookie, status.ContextId, status.Payload.Length));

        var error = Read("error-offset");
        Assert.Equal((NbdReplyType.Error, NbdWire.EIo, true, 1536ul, "bad sector"), (error.Type, error.Error, error.HasOffset, error.Offset, error.Message));

        var unknown = Read("error-unknown-type");
        Assert.Equal((NbdReplyType.Error, NbdWire.ENoMem, ""), (unknown.Type, unknown.Error, unknown.Message));
    }

    [Theory]
    [MemberData(nameof(Malformed))]
    public void AMalformedReplyIsAProtocolError(string what, byte[] bytes)
    {
        var buffer = new ReadOnlySequence<byte>(bytes);
        var exception = Assert.Throws<NbdReplyProtocolException>(() => NbdReplyReader.TryReadReply(ref buffer, out _));
        Assert.False(string.IsNullOrEmpty(exception.Message), what);
    }

    [Fact]
    public void AnOversizedChunkIsRefusedFromItsHeaderBeforeItsPayloadArrives()
    {
        var header = NbdReplyBytes.Chunk(1, NbdWire.ReplyTypeBlockStatus, [], claimedLength: uint.MaxValue);
        var buffer = new ReadOnlySequence<byte>(header);
        Assert.Throws<NbdReplyProtocolException>(() => NbdReplyReader.TryReadReply(ref buffer, out _));
    }

    [Fact]
    public void BlockStatusDescriptorsBecomeExtentsClippedToTheRequest()
    {
        var chunk = NbdReplyBytes.BlockStatus(1, 1, (4096, NbdWire.StateHole | NbdWire.StateZero), (8192, 0), (4096, NbdWire.StateZero));
        var buffer = new ReadOnlySequence<byte>(chunk);
        Assert.True(NbdReplyReader.TryReadReply(ref buffer, out var reply));

        var extents = new List<AllocationExtent>();
        var described = NbdReplyReader.AppendExtents(reply.Payload, extents, limit: 6144);

        Assert.Equal(6144, described);
        Assert.Equal([new(4096, AllocationState.Hole | AllocationState.Zero), new(2048, AllocationState.Data)], extents);
    }

    [Fact]
    public void ABlockStatusDescriptorOfNoBytesIsAProtocolError()
    {
        var chunk = NbdReplyBytes.BlockStatus(1, 1, (0, 0));
        var buffer = new ReadOnlySequence<byte>(chunk);
        Assert.True(NbdReplyReader.TryReadReply(ref buffer, out var reply));
        Assert.Throws<NbdReplyProtocolException>(() => NbdReplyReader.AppendExtents(reply.Payload, [], 4096));
    }

    private static Reply Read(string name)
    {
        var buffer = new ReadOnlySequence<byte>(Samples[name].Bytes);
        Assert.True(NbdReplyReader.TryReadReply(ref buffer, out var reply));
        return reply;
    }

    private static (byte[], int) Whole(byte[] bytes) => (bytes, bytes.Length);
}

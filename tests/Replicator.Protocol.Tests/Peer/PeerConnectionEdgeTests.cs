using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Tests.Peer;

/// <summary>A connection facing a peer that sends what it should not: each is refused clearly and the handler never sees it.</summary>
public sealed class PeerConnectionEdgeTests
{
    [Fact]
    public async Task A_request_trickling_in_one_byte_at_a_time_is_served_once_complete()
    {
        await using var harness = Harness.Start();
        var frame = PeerFrameSamples.Encode(PeerFrameSamples.Write(300), PeerFrameSamples.Blocks(300));

        foreach (var b in frame)
        {
            await harness.Raw.SendAsync([b]);
        }

        var reply = await harness.Raw.ReceiveIgnoringKeepaliveAsync();
        Assert.Equal(ReplyStatus.Ok, reply!.Value.Header.Reply.Status);
        Assert.Equal(1, harness.HandlerCalls);
    }

    [Fact]
    public async Task A_write_whose_payload_differs_from_its_length_is_refused_as_invalid()
    {
        await using var harness = Harness.Start();

        var header = PeerFrameSamples.Write(100);
        await harness.Raw.SendAsync(header, PeerFrameSamples.Blocks(99));

        var reply = await harness.Raw.ReceiveIgnoringKeepaliveAsync();
        Assert.Equal(ReplyStatus.Invalid, reply!.Value.Header.Reply.Status);
        Assert.Equal(header.RequestId, reply.Value.Header.RequestId);
        Assert.Contains("write of 100 bytes came with 99 bytes", reply.Value.Header.Reply.Message, StringComparison.Ordinal);
        Assert.Equal(0, harness.HandlerCalls);
        Assert.Null(harness.Connection.End);
    }

    [Theory]
    [InlineData(4096, 100, 4096, "only 4 KiB-aligned writes")]
    [InlineData(512, 4096, 4096, "not whole blocks of 512 bytes")]
    [InlineData(4096, 4096, 4000, "not whole blocks of 4096 bytes")]
    public async Task A_write_whose_block_checksums_do_not_fit_its_data_is_never_applied(int blockSize, long offset, int length, string phrase)
    {
        await using var harness = Harness.Start();
        var data = PeerFrameSamples.Blocks(length);
        var sums = new byte[(length + 4095) / 4096 * 8];
        Core.Hashing.BlockChecksum.Compute(data.AsSpan(0, length / 4096 * 4096), sums);
        var header = PeerFrameSamples.Write(length, (ulong)offset);
        header.BlockChecksumSize = (uint)blockSize;
        var frame = new System.Buffers.ArrayBufferWriter<byte>();
        PeerFrameWriter.WriteFrame(frame, header, data, sums, PeerFrameLimits.Default);

        await harness.Raw.SendAsync(frame.WrittenSpan.ToArray());

        var reply = await harness.Raw.ReceiveIgnoringKeepaliveAsync();
        Assert.NotEqual(ReplyStatus.Ok, reply!.Value.Header.Reply.Status);
        Assert.True(reply.Value.Header.Reply.Message.Contains(phrase, StringComparison.Ordinal) || harness.Log.Contains(phrase), reply.Value.Header.Reply.Message);
        Assert.Equal(0, harness.HandlerCalls);
        Assert.Null(harness.Connection.End);
    }

    [Theory]
    [InlineData("trim")]
    [InlineData("flush")]
    [InlineData("read")]
    public async Task A_request_that_takes_no_payload_but_has_one_is_refused_as_invalid(string kind)
    {
        await using var harness = Harness.Start();
        var header = kind switch
        {
            "trim" => new Envelope { RequestId = 5, Trim = new TrimRequest { Length = 10 } },
            "flush" => new Envelope { RequestId = 5, Flush = new FlushRequest() },
            _ => new Envelope { RequestId = 5, Read = new ReadRequest { Length = 10 } },
        };

        await harness.Raw.SendAsync(header, PeerFrameSamples.Blocks(10));

        var reply = await harness.Raw.ReceiveIgnoringKeepaliveAsync();
        Assert.Equal(ReplyStatus.Invalid, reply!.Value.Header.Reply.Status);
        Assert.Contains("takes no payload", reply.Value.Header.Reply.Message, StringComparison.Ordinal);
        Assert.Equal(0, harness.HandlerCalls);
    }

    [Fact]
    public async Task A_read_larger_than_a_frame_is_refused_as_invalid()
    {
        await using var harness = Harness.Start();

        await harness.Raw.SendAsync(new Envelope { RequestId = 3, Read = new ReadRequest { Length = PeerWire.DefaultMaxPayloadLength + 1 } });

        var reply = await harness.Raw.ReceiveIgnoringKeepaliveAsync();
        Assert.Equal(ReplyStatus.Invalid, reply!.Value.Header.Reply.Status);
        Assert.Equal(0, harness.HandlerCalls);
    }

    [Fact]
    public async Task A_request_this_node_does_not_know_is_answered_not_supported_and_the_connection_stays()
    {
        await using var harness = Harness.Start();

        await harness.Raw.SendAsync(PeerFrameSamples.EncodeRawHeader([0x08, 0x2A, 0xFA, 0x06, 0x00]));

        var reply = await harness.Raw.ReceiveIgnoringKeepaliveAsync();
        Assert.Equal(42UL, reply!.Value.Header.RequestId);
        Assert.Equal(ReplyStatus.NotSupported, reply.Value.Header.Reply.Status);
        Assert.Contains("does not know the request", reply.Value.Header.Reply.Message, StringComparison.Ordinal);
        Assert.Null(harness.Connection.End);
    }

    [Fact]
    public async Task A_ping_is_answered_with_a_pong_carrying_its_nonce()
    {
        await using var harness = Harness.Start();

        await harness.Raw.SendAsync(new Envelope { Ping = new Ping { Nonce = 77, SentAtUs = 123 } });

        PeerFrame? frame;
        do
        {
            frame = await harness.Raw.ReceiveAsync();
        }
        while (frame is { Header.BodyCase: Envelope.BodyOneofCase.Ping });

        Assert.Equal(77UL, frame!.Value.Header.Pong.Nonce);
        Assert.Equal(123L, frame.Value.Header.Pong.SentAtUs);
    }

    public static TheoryData<string, byte[], string> ProtocolViolations() => new()
    {
        { "bytes that are not a frame", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray(), "magic" },
        { "a request without a request id", PeerFrameSamples.Encode(new Envelope { Flush = new FlushRequest() }, []), "without a request id" },
        { "a Hello after the handshake", PeerFrameSamples.Encode(PeerFrameSamples.Hello(), []), "after the handshake" },
        { "a Ping with a payload", PeerFrameSamples.Encode(new Envelope { Ping = new Ping() }, [1, 2, 3]), "takes none" },
        { "a damaged header", Damaged(PeerFrameSamples.Encode(PeerFrameSamples.Write(10), new byte[10])), "CRC32C" },
    };

    [Theory]
    [MemberData(nameof(ProtocolViolations))]
    public async Task A_protocol_violation_ends_the_connection_and_the_peer_is_told_why(string description, byte[] bytes, string phrase)
    {
        await using var harness = Harness.Start();

        await harness.Raw.SendAsync(bytes);

        var end = await harness.Connection.Completion.WaitAsync(TestTimeouts.Wait);
        Assert.True(end.Reason == PeerConnectionEndReason.ProtocolError, $"{description}: {end}");
        Assert.Contains(phrase, end.Message, StringComparison.Ordinal);
        var goodbye = await harness.Raw.ReceiveIgnoringKeepaliveAsync();
        Assert.Equal(Envelope.BodyOneofCase.Goodbye, goodbye!.Value.Header.BodyCase);
        Assert.Contains(phrase, goodbye.Value.Header.Goodbye.Reason, StringComparison.Ordinal);
        Assert.Null(await harness.Raw.ReceiveIgnoringKeepaliveAsync());
        Assert.Equal(0, harness.HandlerCalls);
        Assert.True(harness.Log.Contains("ProtocolError"));
    }

    private static byte[] Damaged(byte[] frame)
    {
        frame[PeerWire.PrefixLength + 2] ^= 0x40;
        return frame;
    }

    /// <summary>A started connection whose peer is a <see cref="RawPeer"/>.</summary>
    private sealed class Harness : IAsyncDisposable
    {
        private int _handlerCalls;

        private Harness()
        {
            var (a, b) = DuplexPipePair.Create();
            Raw = new RawPeer(b);
            Connection = new PeerConnection(a, new DelegateHandler(HandleAsync), PeerConnectionOptions.Default, Log, "raw-peer");
            Connection.Start();
        }

        public RawPeer Raw { get; }

        public PeerConnection Connection { get; }

        public ListLogger Log { get; } = new();

        public int HandlerCalls => Volatile.Read(ref _handlerCalls);

        public static Harness Start() => new();

        public async ValueTask DisposeAsync() => await Connection.CloseAsync().WaitAsync(TestTimeouts.Wait);

        private ValueTask HandleAsync(PeerIncomingRequest request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _handlerCalls);
            return request.ReplyAsync(ReplyStatus.Ok);
        }
    }
}

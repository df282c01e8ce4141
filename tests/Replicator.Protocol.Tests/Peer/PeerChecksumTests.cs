using System.Collections.Concurrent;
using Replicator.Core.Hashing;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Tests.Peer;

/// <summary>Payloads damaged on the link between two connections are never applied, and are resent.</summary>
public sealed class PeerChecksumTests
{
    [Fact]
    public async Task A_write_damaged_once_is_resent_and_the_handler_only_ever_sees_the_good_data()
    {
        var data = PeerFrameSamples.Blocks(128 * 1024);
        var seen = new ConcurrentQueue<byte[]>();
        var firstWrite = 0;
        var (pair, aToB, _) = CorruptingRelay.Join(
            RecordingHandler(seen),
            aToB: header => header.BodyCase == Envelope.BodyOneofCase.Write && Interlocked.Exchange(ref firstWrite, 1) == 0,
            bToA: _ => false);
        await using var _1 = pair;

        using var reply = await pair.A.SendRequestAsync(PeerFrameSamples.Write(data.Length), data).WaitAsync(TestTimeouts.Wait);

        Assert.True(reply.IsOk, reply.Message);
        Assert.Equal(1, aToB.Corrupted);
        Assert.Equal(2, aToB.ForwardedWithPayload);
        Assert.Equal(data, Assert.Single(seen));
        Assert.True(pair.LogB.Contains("failed its checksum"));
        Assert.True(pair.LogA.Contains("sending the request again (retry 1 of 3)"));
    }

    [Fact]
    public async Task A_write_damaged_every_time_fails_clearly_after_the_retries_and_is_never_applied()
    {
        var seen = new ConcurrentQueue<byte[]>();
        var (pair, aToB, _) = CorruptingRelay.Join(RecordingHandler(seen), aToB: _ => true, bToA: _ => false);
        await using var _1 = pair;

        using var reply = await pair.A.SendRequestAsync(PeerFrameSamples.Write(4096), PeerFrameSamples.Blocks(4096)).WaitAsync(TestTimeouts.Wait);

        Assert.Equal(ReplyStatus.ChecksumMismatch, reply.Status);
        Assert.Contains("corrupted at every one of 4 attempts", reply.Message, StringComparison.Ordinal);
        Assert.Equal(4, aToB.Corrupted);
        Assert.Empty(seen);
        Assert.True(pair.LogA.Contains("giving up"));
        Assert.Null(pair.A.End);
        Assert.Null(pair.B.End);
    }

    [Fact]
    public async Task A_read_reply_damaged_once_is_asked_for_again()
    {
        var reads = 0;
        var firstReply = 0;
        var (pair, _, bToA) = CorruptingRelay.Join(
            new DelegateHandler(async (request, _) =>
            {
                Interlocked.Increment(ref reads);
                await request.ReplyAsync(ReplyStatus.Ok, payload: PeerFrameSamples.Blocks((int)request.Header.Read.Length, seed: 5));
            }),
            aToB: _ => false,
            bToA: header => header.BodyCase == Envelope.BodyOneofCase.Reply && Interlocked.Exchange(ref firstReply, 1) == 0);
        await using var _1 = pair;

        using var reply = await pair.A.SendRequestAsync(new Envelope { Read = new ReadRequest { Length = 8192 } }).WaitAsync(TestTimeouts.Wait);

        Assert.True(reply.IsOk, reply.Message);
        Assert.Equal(PeerFrameSamples.Blocks(8192, seed: 5), reply.Payload.ToArray());
        Assert.Equal(1, bToA.Corrupted);
        Assert.Equal(2, reads);
        Assert.True(pair.LogA.Contains("reply payload to request"));
    }

    [Fact]
    public async Task A_write_with_block_checksums_is_checked_block_by_block_and_they_reach_the_handler_as_sent()
    {
        var data = PeerFrameSamples.Blocks(64 * 1024);
        var sums = new byte[BlockChecksum.BytesFor(data.Length)];
        BlockChecksum.Compute(data, sums);
        var seen = new ConcurrentQueue<(byte[] Data, byte[] Sums)>();
        var firstWrite = 0;
        var (pair, aToB, _) = CorruptingRelay.Join(
            new DelegateHandler(async (request, _) =>
            {
                seen.Enqueue((request.Payload.ToArray(), request.BlockChecksums.ToArray()));
                await request.ReplyAsync(ReplyStatus.Ok);
            }),
            aToB: header => header.BodyCase == Envelope.BodyOneofCase.Write && Interlocked.Exchange(ref firstWrite, 1) == 0,
            bToA: _ => false);
        await using var _1 = pair;

        var request = PeerFrameSamples.Write(data.Length);
        using var reply = await pair.A.SendRequestAsync(request, data, sums, CancellationToken.None).WaitAsync(TestTimeouts.Wait);

        Assert.True(reply.IsOk, reply.Message);
        Assert.Equal((uint)PeerWire.BlockChecksumSize, request.BlockChecksumSize);
        Assert.Equal(0UL, request.PayloadChecksum);
        Assert.Equal(1, aToB.Corrupted);
        var (gotData, gotSums) = Assert.Single(seen);
        Assert.Equal(data, gotData);
        Assert.Equal(sums, gotSums);
        Assert.True(pair.LogB.Contains("does not match its block checksum"));
    }

    [Fact]
    public async Task A_read_reply_with_block_checksums_arrives_checked_and_a_damaged_one_is_asked_for_again()
    {
        var firstReply = 0;
        var (pair, _, bToA) = CorruptingRelay.Join(
            new DelegateHandler(async (request, _) =>
            {
                var data = PeerFrameSamples.Blocks((int)request.Header.Read.Length, seed: 7);
                var sums = new byte[BlockChecksum.BytesFor(data.Length)];
                BlockChecksum.Compute(data, sums);
                await request.ReplyAsync(ReplyStatus.Ok, null, data, sums);
            }),
            aToB: _ => false,
            bToA: header => header.BodyCase == Envelope.BodyOneofCase.Reply && Interlocked.Exchange(ref firstReply, 1) == 0);
        await using var _1 = pair;

        using var reply = await pair.A.SendRequestAsync(new Envelope { Read = new ReadRequest { Offset = 8192, Length = 8192, BlockChecksums = true } }).WaitAsync(TestTimeouts.Wait);

        Assert.True(reply.IsOk, reply.Message);
        var expected = PeerFrameSamples.Blocks(8192, seed: 7);
        Assert.Equal(expected, reply.Payload.ToArray());
        Assert.Equal(BlockChecksum.Of(expected.AsSpan(4096)), BlockChecksum.Get(reply.BlockChecksums.Span, 1));
        Assert.Equal(1, bToA.Corrupted);
    }

    private static DelegateHandler RecordingHandler(ConcurrentQueue<byte[]> seen) => new(async (request, _) =>
    {
        seen.Enqueue(request.Payload.ToArray());
        await request.ReplyAsync(ReplyStatus.Ok);
    });
}

using System.Buffers;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Google.Protobuf;
using Replicator.Benchmarks.Support;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Benchmarks.Protocol.Peer;

/// <summary>
/// Cutting one peer frame out of received bytes (<see cref="PeerFrameReader.TryReadFrame"/>):
/// prefix checks, header CRC-32C, the protobuf Envelope parse and, for a write, the payload copy
/// into a pooled buffer (returned after each parse, as the receiver does once it has applied it).
/// </summary>
/// <remarks>
/// The frames are what a node sends its peer for a replicated 4 KiB write and what comes back
/// for it. Frames are encoded by <see cref="PeerFrameWriter"/>, so they are byte for byte what goes
/// on the wire. The payload checksum (XXH3-64) is checked by the connection, not the reader; see
/// <c>ChecksumBenchmarks</c>. Reference for each frame: copying its bytes out of the same sequence.
/// </remarks>
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class PeerFrameParsingBenchmarks
{
    private const int BlockSize = 4096;

    private readonly PeerFrameLimits _limits = PeerFrameLimits.Default;
    private byte[] _scratch = [];
    private ReadOnlySequence<byte> _write;
    private ReadOnlySequence<byte> _writeSplit;
    private ReadOnlySequence<byte> _reply;

    [GlobalSetup]
    public void Setup()
    {
        var payload = new byte[BlockSize];
        new Random(42).NextBytes(payload);
        var write = Encode(
            new Envelope
            {
                RequestId = 7,
                Write = new WriteRequest { VolumeId = Guid.NewGuid().ToString(), Offset = 1UL << 30, Length = BlockSize },
            },
            payload);
        _write = new ReadOnlySequence<byte>(write);
        _writeSplit = Segments.Split(write, 4096);
        _reply = new ReadOnlySequence<byte>(Encode(new Envelope { RequestId = 7, Reply = new Reply { Status = ReplyStatus.Ok } }, []));
        _scratch = new byte[write.Length];
    }

    [BenchmarkCategory("write 4 KiB"), Benchmark(Baseline = true, Description = "copy frame (reference)")]
    public void CopyWrite() => _write.CopyTo(_scratch);

    [BenchmarkCategory("write 4 KiB"), Benchmark(Description = "parse")]
    public ulong ParseWrite() => Parse(_write);

    [BenchmarkCategory("write 4 KiB, 2 segments"), Benchmark(Baseline = true, Description = "copy frame (reference)")]
    public void CopyWriteSplit() => _writeSplit.CopyTo(_scratch);

    [BenchmarkCategory("write 4 KiB, 2 segments"), Benchmark(Description = "parse")]
    public ulong ParseWriteSplit() => Parse(_writeSplit);

    [BenchmarkCategory("reply OK"), Benchmark(Baseline = true, Description = "copy frame (reference)")]
    public void CopyReply() => _reply.CopyTo(_scratch);

    [BenchmarkCategory("reply OK"), Benchmark(Description = "parse")]
    public ulong ParseReply() => Parse(_reply);

    private ulong Parse(ReadOnlySequence<byte> buffer)
    {
        PeerFrameReader.TryReadFrame(ref buffer, _limits, out var frame);
        frame.Payload?.Dispose();
        return frame.Header.RequestId;
    }

    private static byte[] Encode(Envelope header, byte[] payload)
    {
        var writer = new ArrayBufferWriter<byte>();
        PeerFrameWriter.SealPayload(header, payload);
        PeerFrameWriter.WriteFrame(writer, header, payload, PeerFrameLimits.Default);
        return writer.WrittenSpan.ToArray();
    }
}

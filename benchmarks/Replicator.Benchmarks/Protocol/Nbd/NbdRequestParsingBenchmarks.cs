using System.Buffers;
using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Replicator.Benchmarks.Support;
using Replicator.Protocol.Nbd;

namespace Replicator.Benchmarks.Protocol.Nbd;

/// <summary>
/// Taking one NBD request off the received bytes, as the transmission loop does: the 28-byte
/// header (<see cref="NbdFrameReader.TryReadRequest"/>) and, for a WRITE, its payload moved into
/// the request's buffer (<see cref="NbdFrameReader.ReadPayload"/>).
/// </summary>
/// <remarks>
/// "2 segments" is the WRITE as a pipe holds it: the 4,124 bytes span a 4 KiB pipe segment and
/// the next. Reference for each message: copying its bytes out of the same sequence, the least
/// work that touches them.
/// </remarks>
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class NbdRequestParsingBenchmarks
{
    private const int BlockSize = 4096;
    private const int HeaderLength = 28;

    private readonly byte[] _payload = new byte[BlockSize];
    private readonly byte[] _scratch = new byte[HeaderLength + BlockSize];
    private ReadOnlySequence<byte> _read;
    private ReadOnlySequence<byte> _write;
    private ReadOnlySequence<byte> _writeSplit;

    [GlobalSetup]
    public void Setup()
    {
        _read = new ReadOnlySequence<byte>(Request(NbdWire.CmdRead, offset: 1L << 30, length: BlockSize, payload: []));
        var payload = new byte[BlockSize];
        new Random(42).NextBytes(payload);
        var write = Request(NbdWire.CmdWrite, offset: 1L << 30, length: BlockSize, payload);
        _write = new ReadOnlySequence<byte>(write);
        _writeSplit = Segments.Split(write, 4096);
    }

    [BenchmarkCategory("READ header"), Benchmark(Baseline = true, Description = "copy 28 B (reference)")]
    public void CopyRead() => _read.CopyTo(_scratch);

    [BenchmarkCategory("READ header"), Benchmark(Description = "parse")]
    public ulong ParseRead()
    {
        var buffer = _read;
        NbdFrameReader.TryReadRequest(ref buffer, out var request);
        return request.Offset;
    }

    [BenchmarkCategory("WRITE 4 KiB"), Benchmark(Baseline = true, Description = "copy 4124 B (reference)")]
    public void CopyWrite() => _write.CopyTo(_scratch);

    [BenchmarkCategory("WRITE 4 KiB"), Benchmark(Description = "parse")]
    public int ParseWrite() => ParseWrite(_write);

    [BenchmarkCategory("WRITE 4 KiB, 2 segments"), Benchmark(Baseline = true, Description = "copy 4124 B (reference)")]
    public void CopyWriteSplit() => _writeSplit.CopyTo(_scratch);

    [BenchmarkCategory("WRITE 4 KiB, 2 segments"), Benchmark(Description = "parse")]
    public int ParseWriteSplit() => ParseWrite(_writeSplit);

    private int ParseWrite(ReadOnlySequence<byte> buffer)
    {
        NbdFrameReader.TryReadRequest(ref buffer, out var request);
        return NbdFrameReader.ReadPayload(ref buffer, _payload.AsSpan(0, (int)request.Length));
    }

    /// <summary>A request as a client puts it on the wire (layout drawn in <see cref="NbdFrameReader.TryReadRequest"/>).</summary>
    private static byte[] Request(ushort type, long offset, uint length, byte[] payload)
    {
        var bytes = new byte[HeaderLength + payload.Length];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, NbdWire.RequestMagic);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(6), type);
        BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(8), 0x0102030405060708);
        BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(16), (ulong)offset);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(24), length);
        payload.CopyTo(bytes, HeaderLength);
        return bytes;
    }
}

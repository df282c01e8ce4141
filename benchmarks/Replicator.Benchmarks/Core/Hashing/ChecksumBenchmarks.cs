using BenchmarkDotNet.Attributes;
using Replicator.Benchmarks.Support;
using Replicator.Core.Hashing;

namespace Replicator.Benchmarks.Core.Hashing;

/// <summary>
/// The two checksums of the data path: XXH3-64 over every block payload that crosses the peer link
/// (and every region resync and verify compare), CRC-32C over every peer frame header.
/// </summary>
/// <remarks>
/// Reference: copying the same bytes (<c>Span.CopyTo</c>), the least any pass over them costs, so
/// the Ratio column reads "this checksum costs N memcpys". GB/s is the size over the mean.
/// </remarks>
[MemoryDiagnoser]
[Config(typeof(ThroughputConfig))]
public class ChecksumBenchmarks
{
    private byte[] _data = [];
    private byte[] _copy = [];

    /// <summary>One 4 KiB block (the common request) and one 1 MiB request (sequential I/O).</summary>
    [Params(4096, 1 << 20)]
    public int Size { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data = new byte[Size];
        new Random(42).NextBytes(_data);
        _copy = new byte[Size];
    }

    [Benchmark(Baseline = true, Description = "memcpy (reference)")]
    public void Copy() => _data.AsSpan().CopyTo(_copy);

    [Benchmark(Description = "XXH3-64")]
    public ulong Xxh3Hash() => ContentHash.Of(_data);

    [Benchmark(Description = "Crc32C")]
    public uint Crc32CCompute() => Crc32C.Compute(_data);
}

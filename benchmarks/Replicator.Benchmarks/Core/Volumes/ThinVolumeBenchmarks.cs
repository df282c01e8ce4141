using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Logging.Abstractions;
using Replicator.Benchmarks.Support;
using Replicator.Core.Devices;
using Replicator.Core.Pool;
using Replicator.Core.Storage;
using Replicator.Core.Volumes;

namespace Replicator.Benchmarks.Core.Volumes;

/// <summary>
/// A 4 KiB request through the thin volume on a pool in a <see cref="MemoryFileSystem"/>: lookup
/// and pin under the pool lock, copy, unpin.
/// </summary>
/// <remarks>
/// <para>Each invocation does <see cref="Operations"/> requests at shuffled 4 KiB offsets; the
/// figures are per request. Reference: the same 4 KiB writes straight into the pool's data file,
/// so the Ratio column is the volume's overhead over the bare copy.</para>
/// <para>First write: every request lands in a unit that has no extent yet, so it allocates one and
/// appends the mapping to the journal (in memory too, so the figure is the engine's work without
/// the pwrite of a 37-byte record). Each iteration starts on a fresh pool whose data file memory is
/// touched in advance: what is allocated is the engine's, not the in-memory file's lazily created
/// 64 KiB chunks.</para>
/// </remarks>
[MemoryDiagnoser]
[FixedInvocations(Invocations)]
public class ThinVolumeBenchmarks
{
    private const int Operations = 256;
    private const int Invocations = 8;
    private const int BlockSize = 4096;
    private const long VolumeSize = 1L << 30;
    private const int WarmUnits = 1024;

    private readonly byte[] _block = new byte[BlockSize];
    private readonly long[] _offsets = new long[Operations];
    private Pool _steady = null!;
    private Pool _fresh = null!;
    private long _nextUnit;

    [GlobalSetup]
    public void Setup()
    {
        new Random(42).NextBytes(_block);
        _steady = new Pool();
        var unit = new byte[_steady.Volume.UnitSize];
        for (var u = 0; u < WarmUnits; u++)
        {
            _steady.Volume.WriteAsync((long)u * unit.Length, unit, IoFlags.None).GetAwaiter().GetResult();
        }

        var random = new Random(7);
        var blocks = (long)WarmUnits * unit.Length / BlockSize;
        for (var i = 0; i < Operations; i++)
        {
            _offsets[i] = random.NextInt64(blocks) * BlockSize;
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _steady.Dispose();

    [IterationSetup(Target = nameof(FirstWrite))]
    public void FreshPool()
    {
        _fresh = new Pool();
        _fresh.TouchStore(Operations * Invocations);
        _nextUnit = 0;
    }

    [IterationCleanup(Target = nameof(FirstWrite))]
    public void DropFreshPool() => _fresh.Dispose();

    [Benchmark(Baseline = true, OperationsPerInvoke = Operations, Description = "store write 4 KiB (reference)")]
    public void StoreWrite()
    {
        foreach (var offset in _offsets)
        {
            _steady.Store.Write(offset, _block);
        }
    }

    [Benchmark(OperationsPerInvoke = Operations, Description = "write 4 KiB, allocated unit")]
    public void WriteAllocated()
    {
        var volume = _steady.Volume;
        foreach (var offset in _offsets)
        {
            volume.WriteAsync(offset, _block, IoFlags.None).GetAwaiter().GetResult();
        }
    }

    [Benchmark(OperationsPerInvoke = Operations, Description = "read 4 KiB, allocated unit")]
    public void ReadAllocated()
    {
        var volume = _steady.Volume;
        foreach (var offset in _offsets)
        {
            volume.ReadAsync(offset, _block).GetAwaiter().GetResult();
        }
    }

    [Benchmark(OperationsPerInvoke = Operations, Description = "write 4 KiB, first write (allocates)")]
    public void FirstWrite()
    {
        var volume = _fresh.Volume;
        var unitSize = volume.UnitSize;
        for (var i = 0; i < Operations; i++)
        {
            volume.WriteAsync(_nextUnit++ * unitSize, _block, IoFlags.None).GetAwaiter().GetResult();
        }
    }

    /// <summary>A pool in memory with one volume.</summary>
    private sealed class Pool : IDisposable
    {
        private readonly StoragePool _pool;

        public Pool()
        {
            var files = new MemoryFileSystem();
            _pool = StoragePool.Create(files, "/pool", new PoolOptions { FileCapacity = 2 * VolumeSize }, NullLogger.Instance);
            Store = files.OpenFile("/pool/data-000.img", FileOpenMode.Open);
            Volume = _pool.CreateVolume("bench", VolumeSize);
        }

        /// <summary>The pool's data file, written around the pool.</summary>
        public IStorageFile Store { get; }

        public ThinVolume Volume { get; }

        /// <summary>Makes the store hold memory for the first <paramref name="extents"/> extents, which next-fit hands out first.</summary>
        public void TouchStore(int extents)
        {
            var zeros = new byte[_pool.ExtentSize];
            for (var e = 0; e < extents; e++)
            {
                Store.Write((long)e * zeros.Length, zeros);
            }
        }

        public void Dispose()
        {
            _pool.Dispose();
            Store.Dispose();
        }
    }
}

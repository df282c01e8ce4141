using BenchmarkDotNet.Attributes;
using Replicator.Core.Volumes;

namespace Replicator.Benchmarks.Core.Volumes;

/// <summary>
/// The thin map, looked up on every I/O and changed on every first write and trim.
/// </summary>
/// <remarks>
/// The map holds 64 Ki units (4 GiB of 64 KiB extents, 64 pages), every other unit mapped, so a
/// lookup hits, falls in a hole of a present page, or misses a page, depending on the unit.
/// Each benchmark does <see cref="Operations"/> operations over a shuffled unit list (so the
/// branch predictor and the cache see a random pattern, as with random I/O); the figures are per
/// operation. Reference: the same lookups in a <c>Dictionary&lt;long, long&gt;</c> of the same
/// mappings, the map anyone would write first.
/// </remarks>
[MemoryDiagnoser]
public class BlockMapBenchmarks
{
    private const int Operations = 1024;
    private const int Units = 64 * 1024;

    private readonly BlockMap _map = new();
    private readonly Dictionary<long, long> _dictionary = [];
    private readonly long[] _mapped = new long[Operations];
    private readonly long[] _holes = new long[Operations];
    private readonly long[] _absent = new long[Operations];
    private readonly long[] _scratch = new long[Operations];

    [GlobalSetup]
    public void Setup()
    {
        for (long unit = 0; unit < Units; unit += 2)
        {
            _map.Map(unit, unit / 2);
            _dictionary[unit] = unit / 2;
        }

        var random = new Random(42);
        for (var i = 0; i < Operations; i++)
        {
            _mapped[i] = random.Next(Units / 2) * 2L;
            _holes[i] = (random.Next(Units / 2) * 2L) + 1;
            _absent[i] = Units + (random.Next(Units) * BlockMap.PageEntries);
        }

        // Units for map/unmap: holes in present pages, so no page comes or goes (the steady state).
        for (var i = 0; i < Operations; i++)
        {
            _scratch[i] = (i * 2L * 61 % Units) + 1;
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Operations, Description = "Dictionary hit (reference)")]
    public long DictionaryHit()
    {
        long sum = 0;
        foreach (var unit in _mapped)
        {
            _dictionary.TryGetValue(unit, out var extent);
            sum += extent;
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = Operations, Description = "lookup hit")]
    public long LookupHit()
    {
        long sum = 0;
        foreach (var unit in _mapped)
        {
            _map.TryGet(unit, out var extent);
            sum += extent;
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = Operations, Description = "lookup miss, hole in page")]
    public long LookupHole()
    {
        long sum = 0;
        foreach (var unit in _holes)
        {
            _map.TryGet(unit, out var extent);
            sum += extent;
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = Operations, Description = "lookup miss, no page")]
    public long LookupAbsent()
    {
        long sum = 0;
        foreach (var unit in _absent)
        {
            _map.TryGet(unit, out var extent);
            sum += extent;
        }

        return sum;
    }

    /// <summary>A map and an unmap of a unit in a page that stays (first write, then trim, of one unit).</summary>
    [Benchmark(OperationsPerInvoke = Operations, Description = "map + unmap")]
    public long MapUnmap()
    {
        long sum = 0;
        foreach (var unit in _scratch)
        {
            _map.Map(unit, unit);
            _map.TryUnmap(unit, out var extent);
            sum += extent;
        }

        return sum;
    }
}

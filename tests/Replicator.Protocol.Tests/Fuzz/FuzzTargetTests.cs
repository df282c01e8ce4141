using System.Diagnostics;
using Replicator.Fuzz.Targets;

namespace Replicator.Protocol.Tests.Fuzz;

/// <summary>Runs alone, so the allocation each input causes is measured without other tests' allocations.</summary>
[CollectionDefinition(nameof(FuzzCollection), DisableParallelization = true)]
public sealed class FuzzCollection;

/// <summary>
/// The short fuzzing pass of the test suite: every target's seeds, then a fixed series of mutated inputs (the same in
/// every run), each of which must end in a valid parse or the protocol error the code defines: no other exception, no
/// hang, no allocation beyond <see cref="FuzzCheck.AllocationBudget"/>. The long, coverage-guided run is
/// <c>benchmarks/fuzz/run.sh</c> (afl++ with SharpFuzz).
/// </summary>
[Collection(nameof(FuzzCollection))]
public sealed class FuzzTargetTests
{
    /// <summary>Longest one input may run; generous, since the machine may be busy.</summary>
    private static readonly TimeSpan InputLimit = TimeSpan.FromSeconds(30);

    public static TheoryData<string> Targets => [.. FuzzTargets.All.Select(t => t.Name)];

    [Theory]
    [MemberData(nameof(Targets))]
    public void EverySeedEndsCleanly(string name)
    {
        var target = FuzzTargets.Find(name)!;

        foreach (var (seed, bytes) in target.Seeds())
        {
            RunBounded(target, bytes, seed);
        }
    }

    [Theory]
    [InlineData("nbd-parsers", 5000)]
    [InlineData("nbd-session", 2000)]
    [InlineData("nbd-session-tls", 500)]
    [InlineData("peer-frames", 5000)]
    [InlineData("peer-handshake", 1500)]
    public void MutatedInputsEndInAParseOrTheProtocolsError(string name, int inputs)
    {
        var target = FuzzTargets.Find(name)!;
        var mutator = new FuzzMutator([.. target.Seeds().Select(s => s.Bytes)], randomSeed: 14);

        for (var i = 0; i < inputs; i++)
        {
            RunBounded(target, mutator.Next(), $"mutation {i}");
        }
    }

    [Fact]
    public void EveryTargetIsRunHere() =>
        Assert.Equal(
            FuzzTargets.All.Select(t => t.Name).Order(),
            typeof(FuzzTargetTests).GetMethod(nameof(MutatedInputsEndInAParseOrTheProtocolsError))!
                .GetCustomAttributes(typeof(InlineDataAttribute), false).Cast<InlineDataAttribute>()
                .Select(a => (string)a.GetData(null!).Single()[0]).Order());

    private static void RunBounded(IFuzzTarget target, byte[] input, string what)
    {
        var run = Task.Run(() => FuzzCheck.Run(target, input));
        var watch = Stopwatch.StartNew();
        try
        {
            Assert.True(run.Wait(InputLimit), $"{target.Name}, {what}: still running after {InputLimit.TotalSeconds} s");
        }
        catch (AggregateException exception)
        {
            Assert.Fail($"{target.Name}, {what} ({input.Length} bytes: {Convert.ToHexString(input)}) failed after {watch.ElapsedMilliseconds} ms: {exception.InnerException}");
        }
    }
}

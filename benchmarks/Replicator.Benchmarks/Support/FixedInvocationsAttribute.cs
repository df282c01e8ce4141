using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Jobs;

namespace Replicator.Benchmarks.Support;

/// <summary>
/// Runs each iteration as exactly <c>count</c> invocations, not unrolled: for benchmarks whose
/// <c>[IterationSetup]</c> prepares a fixed amount of work (BenchmarkDotNet 0.14 has no
/// attribute for the unroll factor).
/// </summary>
[AttributeUsage(AttributeTargets.Class)]
internal sealed class FixedInvocationsAttribute(int count)
    : JobMutatorConfigBaseAttribute(Job.Default.WithInvocationCount(count).WithUnrollFactor(1));

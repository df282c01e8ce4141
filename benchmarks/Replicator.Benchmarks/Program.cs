using BenchmarkDotNet.Running;

namespace Replicator.Benchmarks;

/// <summary>
/// Runs the micro benchmarks: <c>dotnet run -c Release -- --filter '*'</c> (see ../README.md).
/// Without <c>--job</c>, every benchmark runs as BenchmarkDotNet's ShortRun, so the whole suite
/// fits in a few minutes on a small machine; pass <c>--job default</c> for publishable precision.
/// </summary>
internal static class Program
{
    private static void Main(string[] args)
    {
        var hasJob = args.Any(a => a is "--job" or "-j" || a.StartsWith("--job=", StringComparison.Ordinal));
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(hasJob ? args : [.. args, "--job", "short"]);
    }
}

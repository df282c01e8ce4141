using System.Globalization;
using Replicator.IntegrationTests.Harness;
using Xunit.Abstractions;

namespace Replicator.IntegrationTests.Chaos;

/// <summary>
/// The chaos soak, bounded: <c>REPLICATOR_CHAOS_SECONDS</c> of faults (75 by default, so every kind comes once;
/// <c>benchmarks/chaos/run.sh</c> runs it for 10 minutes), seed <c>REPLICATOR_CHAOS_SEED</c> (random by
/// default, printed). The table goes to the test output and, when <c>REPLICATOR_CHAOS_REPORT</c> names a
/// file, there too. No acknowledged write may be lost and the replicas must end identical; the client's I/O
/// errors are counted, not judged here (a killed gateway takes its clients' connections with it).
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class ChaosSoakTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Under_random_faults_no_acknowledged_write_is_lost_and_the_replicas_end_identical()
    {
        var seconds = double.Parse(Environment.GetEnvironmentVariable("REPLICATOR_CHAOS_SECONDS") ?? "75", CultureInfo.InvariantCulture);
        var seed = Environment.GetEnvironmentVariable("REPLICATOR_CHAOS_SEED") is { } given
            ? int.Parse(given, CultureInfo.InvariantCulture)
            : Random.Shared.Next();

        var report = await ChaosSoak.RunAsync(TimeSpan.FromSeconds(seconds), seed, output.WriteLine);

        var table = report.Table();
        output.WriteLine(table);
        if (Environment.GetEnvironmentVariable("REPLICATOR_CHAOS_REPORT") is { Length: > 0 } path)
        {
            await File.WriteAllTextAsync(path, table + Environment.NewLine + string.Join(Environment.NewLine, report.Log) + Environment.NewLine);
        }

        Assert.True(report.Lost.Count == 0, $"seed {seed}: acknowledged writes lost:\n{string.Join('\n', report.Lost)}");
        Assert.True(report.Differences == 0, $"seed {seed}: the replicas differ in {report.Differences} bytes");
        Assert.True(report.RegionsChecked > 0, $"seed {seed}: no region was written whole and acknowledged, so nothing was checked");
        Assert.True(report.Faults.Values.Sum() > 0, $"seed {seed}: no fault was injected in {seconds} s");
    }
}

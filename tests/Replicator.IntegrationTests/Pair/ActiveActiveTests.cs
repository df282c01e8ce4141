using Replicator.IntegrationTests.Harness;
using Xunit.Abstractions;

namespace Replicator.IntegrationTests.Pair;

/// <summary>Invariant 2: both nodes take writes to the same blocks at once, and the replicas still end identical.</summary>
[Collection(IntegrationCollection.Name)]
public sealed class ActiveActiveTests(ClusterFixture fixture, ITestOutputHelper output) : IClassFixture<ClusterFixture>
{
    private TestCluster Cluster => fixture.Cluster;

    [Fact]
    public async Task Concurrent_overlapping_writes_through_both_nodes_leave_identical_replicas()
    {
        var volume = await fixture.NewVolumeAsync("64M");
        for (var round = 0; round < 3; round++)
        {
            // Same 16 MiB range, different seeds and block sizes, so writes overlap partially and in full.
            var throughA = Fio.RunAsync(Cluster.Uri("a", volume), Cluster.Directory, $"overlap-a{round}",
                "--rw=randwrite", "--bs=4k", "--size=16M", "--iodepth=16", "--time_based=1", "--runtime=4", $"--randseed={100 + round}", "--norandommap=1");
            var throughB = Fio.RunAsync(Cluster.Uri("b", volume), Cluster.Directory, $"overlap-b{round}",
                "--rw=randwrite", "--bsrange=4k-64k", "--size=16M", "--iodepth=16", "--time_based=1", "--runtime=4", $"--randseed={200 + round}", "--norandommap=1");
            var results = await Task.WhenAll(throughA, throughB);
            foreach (var result in results)
            {
                Assert.True(result.ExitCode == 0 && result.Errors == 0, result.Output);
            }

            output.WriteLine($"round {round}: {results[0].WrittenBytes >> 20} MiB through a, {results[1].WrittenBytes >> 20} MiB through b, same 16 MiB");
            Assert.Equal(0, await Cluster.VerifyAsync(volume));
        }
    }

    [Fact]
    public async Task Changing_the_preferred_node_under_load_moves_the_write_order_without_errors()
    {
        var volume = await fixture.NewVolumeAsync("64M", preferred: "a");
        var load = Task.WhenAll(
            Fio.RunAsync(Cluster.Uri("a", volume), Cluster.Directory, "prefer-a", "--rw=randwrite", "--bs=4k", "--size=16M", "--iodepth=8", "--time_based=1", "--runtime=6", "--randseed=5"),
            Fio.RunAsync(Cluster.Uri("b", volume), Cluster.Directory, "prefer-b", "--rw=randwrite", "--bs=8k", "--size=16M", "--iodepth=8", "--time_based=1", "--runtime=6", "--randseed=6"));
        foreach (var node in new[] { "b", "a", "b" })
        {
            await Task.Delay(1500);
            var prefer = await Cluster.CliAsync("volume", "prefer", volume, "--node", node, "--json");
            Assert.True(prefer.ExitCode == 0, prefer.Describe());
            using var json = System.Text.Json.JsonDocument.Parse(prefer.Stdout);
            Assert.Equal(node, json.RootElement.GetProperty("replication").GetProperty("writesOrderedBy").GetString());
        }

        foreach (var result in await load)
        {
            Assert.True(result.ExitCode == 0 && result.Errors == 0, result.Output);
        }

        Assert.Equal(0, await Cluster.VerifyAsync(volume));
    }
}

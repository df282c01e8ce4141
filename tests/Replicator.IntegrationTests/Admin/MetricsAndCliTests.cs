using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Replicator.IntegrationTests.Harness;

namespace Replicator.IntegrationTests.Admin;

/// <summary><c>GET /metrics</c> after real traffic, and the CLI's status output against the API it reads.</summary>
[Collection(IntegrationCollection.Name)]
public sealed partial class MetricsAndCliTests(ClusterFixture fixture) : IClassFixture<ClusterFixture>
{
    private TestCluster Cluster => fixture.Cluster;

    [Fact]
    public async Task Metrics_count_the_bytes_fio_wrote_within_a_few_percent()
    {
        var volume = await fixture.NewVolumeAsync("256M");
        var before = await ScrapeAsync("a");
        var fio = await Fio.RunAsync(Cluster.Uri("a", volume), Cluster.Directory, "metrics", "--rw=randwrite", "--bs=16k", "--size=48M", "--iodepth=8");
        Assert.True(fio.ExitCode == 0 && fio.Errors == 0, fio.Output);
        var after = await ScrapeAsync("a");

        var written = Value(after, "replicator_volume_bytes_total", volume, "write") - Value(before, "replicator_volume_bytes_total", volume, "write");
        Assert.InRange(written, fio.WrittenBytes * 0.97, fio.WrittenBytes * 1.03);
        var requests = Value(after, "replicator_volume_requests_total", volume, "write") - Value(before, "replicator_volume_requests_total", volume, "write");
        Assert.InRange(requests, fio.WrittenBytes / 16384 * 0.97, fio.WrittenBytes / 16384 * 1.03);
        Assert.Equal(requests, Value(after, "replicator_volume_latency_seconds_count", volume, "write") - Value(before, "replicator_volume_latency_seconds_count", volume, "write"));
        Assert.Contains("replicator_volume_latency_seconds_bucket{op=\"write\",volume=\"" + volume + "\",le=\"+Inf\"}", after);
        Assert.Contains($"replicator_volume_inflight{{volume=\"{volume}\"}} 0", after);
        Assert.Matches(@"replicator_pool_allocated_bytes \d+", after);
        Assert.Matches(@"replicator_pool_free_bytes \d+", after);
        Assert.Matches($@"replicator_replication_out_of_sync_bytes{{volume=""{volume}""}} 0", after);
        Assert.Matches(@"replicator_peer_connected 1", after);
        Assert.Matches(@"replicator_replication_lag_seconds [0-9.eE-]+", after);
    }

    [Fact]
    public async Task Status_json_matches_the_api_and_the_table_shows_the_key_fields()
    {
        var volume = await fixture.NewVolumeAsync("96M");
        var status = await Cluster.CliAsync("status", "--json");
        Assert.True(status.ExitCode == 0, status.Describe());
        using var json = JsonDocument.Parse(status.Stdout);
        var nodes = json.RootElement.EnumerateArray().ToList();
        Assert.Equal(["a", "b"], nodes.Select(n => n.GetProperty("name").GetString()));
        foreach (var node in nodes)
        {
            var name = node.GetProperty("name").GetString()!;
            using var fromApi = await Cluster.GetJsonAsync(name, $"/api/v1/volumes/{volume}");
            var fromCli = node.GetProperty("volumes").EnumerateArray().Single(v => v.GetProperty("name").GetString() == volume);
            Assert.Equal(fromApi.RootElement.GetProperty("id").GetString(), fromCli.GetProperty("id").GetString());
            Assert.Equal(fromApi.RootElement.GetProperty("sizeBytes").GetInt64(), fromCli.GetProperty("sizeBytes").GetInt64());
            Assert.Equal(
                fromApi.RootElement.GetProperty("replication").GetProperty("generation").GetProperty("current").GetString(),
                fromCli.GetProperty("replication").GetProperty("generation").GetProperty("current").GetString());
            Assert.Equal("connected", fromCli.GetProperty("replication").GetProperty("connection").GetString());
            Assert.True(node.GetProperty("node").GetProperty("peer").GetProperty("connected").GetBoolean());
        }

        var table = await Cluster.CliAsync("status");
        Assert.True(table.ExitCode == 0, table.Describe());
        foreach (var text in new[] { "node a", "node b", "peer b", "peer a", "connected", volume, "96 MiB", "up-to-date", "witness", "out of sync", "read lease held (500 ms)" })
        {
            Assert.Contains(text, table.Stdout);
        }
    }

    [Fact]
    public async Task Cli_exit_codes_tell_usage_errors_unreachable_nodes_and_failed_checks_apart()
    {
        var usage = await ReplicatorProcess.RunAsync(["volume", "create", "x", "--bogus"]);
        Assert.Equal(2, usage.ExitCode);
        Assert.Contains("--bogus", usage.Stderr);

        var unreachable = await ReplicatorProcess.RunAsync(["status", "--admin", "http://127.0.0.1:9", "--token-file", Path.Combine(Cluster.Directory, "admin.token")]);
        Assert.Equal(3, unreachable.ExitCode);
        Assert.Contains("cannot reach", unreachable.Stderr);

        var missing = await Cluster.CliAsync("verify", "no-such-volume");
        Assert.Equal(4, missing.ExitCode);
        Assert.Contains("no volume named 'no-such-volume'", missing.Stderr);
    }

    private Task<string> ScrapeAsync(string node) => Cluster.GetTextAsync(new Uri(Cluster.Admin(node), "/metrics"), "text/plain");

    private static double Value(string exposition, string name, string volume, string op)
    {
        var match = Regex.Match(exposition, $@"^{Regex.Escape(name)}{{op=""{op}"",volume=""{Regex.Escape(volume)}""}} ([0-9.eE+-]+)$", RegexOptions.Multiline);
        return match.Success ? double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
    }
}

using System.Globalization;
using System.Text.Json;
using Replicator.IntegrationTests.Harness;

namespace Replicator.IntegrationTests.Gateway;

/// <summary>What fio reported for a run through the gateway, with the longest completion latency it saw.</summary>
public sealed record FioRun(int ExitCode, int Errors, long WrittenBytes, long ReadBytes, double MaxWriteMs, double MaxReadMs, string Output)
{
    /// <summary>The longest any single I/O took to complete: the stall a client saw.</summary>
    public double LongestStallMs => Math.Max(MaxWriteMs, MaxReadMs);
}

/// <summary>A volume's routing as <c>GET /api/v1/gateway</c> reports it.</summary>
public sealed record GatewayVolumeState(string? ActiveNode, string? PreferredNode, long Switches, long ReissuedRequests, string? LastSwitchReason, string Paths);

/// <summary>Gateway helpers shared by the gateway tests: volumes with a chosen preferred node, status, fio with latencies.</summary>
public static class GatewayHarness
{
    /// <summary>
    /// Creates a volume whose preferred node is <paramref name="preferred"/> and waits until it is paired and the
    /// gateway exports it (the gateway connects to the nodes once a client attaches).
    /// </summary>
    public static async Task<string> CreateVolumeAsync(TestCluster cluster, string name, string preferred, string size = "256M")
    {
        (await cluster.SendJsonAsync("a", HttpMethod.Post, "/api/v1/volumes", new { name, size, preferredNode = preferred })).Dispose();
        await TestCluster.WaitUntilAsync(
            async () => (await cluster.VolumeAsync("a", name)).InSync && (await cluster.VolumeAsync("b", name)).InSync,
            TimeSpan.FromSeconds(30), $"volume {name} did not pair");
        await TestCluster.WaitUntilAsync(async () => await VolumeAsync(cluster, name) is { PreferredNode: var p } && p == preferred,
            TimeSpan.FromSeconds(30), $"the gateway did not export {name}");
        return name;
    }

    public static async Task<GatewayVolumeState?> VolumeAsync(TestCluster cluster, string volume)
    {
        using var status = await cluster.GatewayStatusAsync();
        foreach (var v in status.RootElement.GetProperty("volumes").EnumerateArray())
        {
            if (v.GetProperty("name").GetString() == volume)
            {
                var last = v.GetProperty("lastSwitch");
                var paths = string.Join("; ", v.GetProperty("paths").EnumerateArray().Select(p =>
                    $"{p.GetProperty("node").GetString()} {p.GetProperty("state").GetString()}" +
                    $" (in sync {p.GetProperty("inSync").GetBoolean()}, failures in a row {p.GetProperty("failuresInARow").GetInt32()}," +
                    $" last failure: {(p.GetProperty("lastFailure").ValueKind == JsonValueKind.String ? p.GetProperty("lastFailure").GetString() : "none")})"));
                return new GatewayVolumeState(
                    v.GetProperty("activeNode").ValueKind == JsonValueKind.String ? v.GetProperty("activeNode").GetString() : null,
                    v.GetProperty("preferredNode").GetString(),
                    v.GetProperty("switches").GetInt64(),
                    v.GetProperty("reissuedRequests").GetInt64(),
                    last.ValueKind == JsonValueKind.Object ? last.GetProperty("reason").GetString() : null,
                    paths);
            }
        }

        return null;
    }

    /// <summary>The gateway's <c>GET /metrics</c>.</summary>
    public static Task<string> ScrapeAsync(TestCluster cluster) =>
        cluster.GetTextAsync(new Uri(new Uri(cluster.Gateway.GetProperty("admin").GetString()!), "/metrics"), "text/plain");

    /// <summary>
    /// fio through the gateway for <paramref name="seconds"/>: 4 KiB random writes at queue depth 16, each
    /// block read back and checked (crc32c) while the run goes on, so a lost or misplaced write fails it.
    /// </summary>
    public static Task<FioRun> VerifyingWritesAsync(TestCluster cluster, string volume, string name, int seed, int seconds) =>
        RunFioAsync(cluster.GatewayUri(volume), cluster.Directory, name,
            "--rw=randwrite", "--bs=4k", "--size=128M", "--iodepth=16", $"--randseed={seed}",
            "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--verify_backlog=512",
            "--time_based=1", $"--runtime={seconds}");

    /// <summary>Waits until the gateway sends the volume's I/O to <paramref name="node"/> (after at least <paramref name="minSwitches"/> switches).</summary>
    public static Task WaitActiveAsync(TestCluster cluster, string volume, string node, TimeSpan timeout, long minSwitches = 0) =>
        TestCluster.WaitUntilAsync(async () => await VolumeAsync(cluster, volume) is { } v && v.ActiveNode == node && v.Switches >= minSwitches,
            timeout, $"the gateway did not serve {volume} from node {node}", () => DescribeAsync(cluster, volume));

    /// <summary>What the gateway and both nodes report about the volume, for a failure message.</summary>
    private static async Task<string> DescribeAsync(TestCluster cluster, string volume)
    {
        return string.Join("\n",
            await ReportAsync("gateway", () => VolumeAsync(cluster, volume)),
            await ReportAsync("node a", () => cluster.VolumeAsync("a", volume)),
            await ReportAsync("node b", () => cluster.VolumeAsync("b", volume)),
            cluster.LogTails());

        static async Task<string> ReportAsync<T>(string who, Func<Task<T>> ask)
        {
            try
            {
                return $"{who}: {await ask()}";
            }
            catch (HttpRequestException e)
            {
                return $"{who}: {e.Message}";
            }
        }
    }

    /// <summary>Starts fio's NBD engine on <paramref name="uri"/>; the task completes with its JSON report read.</summary>
    public static async Task<FioRun> RunFioAsync(string uri, string workDirectory, string name, params string[] options)
    {
        string[] args =
        [
            "--name=" + name, "--ioengine=nbd", "--uri=" + uri, "--output-format=json",
            "--directory=" + workDirectory, "--group_reporting=1", .. options,
        ];
        var result = await ExternalTool.RunAsync("fio", args, TimeSpan.FromMinutes(3));
        var start = result.Stdout.IndexOf('{', StringComparison.Ordinal);
        Assert.True(start >= 0, result.Describe());
        using var json = JsonDocument.Parse(result.Stdout[start..]);
        var job = json.RootElement.GetProperty("jobs")[0];
        return new FioRun(
            result.ExitCode,
            job.GetProperty("error").GetInt32(),
            job.GetProperty("write").GetProperty("io_bytes").GetInt64(),
            job.GetProperty("read").GetProperty("io_bytes").GetInt64(),
            MaxMs(job.GetProperty("write")),
            MaxMs(job.GetProperty("read")),
            result.Describe());
    }

    public static string Ms(double value) => value.ToString("0.0", CultureInfo.InvariantCulture) + " ms";

    private static double MaxMs(JsonElement direction) =>
        direction.GetProperty("clat_ns").GetProperty("max").GetDouble() / 1e6;
}

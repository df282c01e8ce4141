using System.Text.Json;
using Replicator.IntegrationTests.Harness;
using Replicator.IntegrationTests.SingleNode;
using Xunit.Abstractions;

namespace Replicator.IntegrationTests.Pair;

/// <summary>Degraded mode and dirty-region resync: kill or cut, write, come back, resync only what changed.</summary>
[Collection(IntegrationCollection.Name)]
public sealed class ResyncTests(ClusterFixture fixture, ITestOutputHelper output) : IClassFixture<ClusterFixture>
{
    private const long Dirtied = 64L << 20;

    private TestCluster Cluster => fixture.Cluster;

    [Fact]
    public async Task After_b_is_killed_only_the_regions_written_meanwhile_are_resent()
    {
        var volume = await fixture.NewVolumeAsync("1G");
        await Cluster.KillAsync("b");
        await WriteRandomBlocksAsync(Cluster.Uri("a", volume), seed: 7);
        var before = await Cluster.VolumeAsync("a", volume);
        Assert.Equal("disconnected", before.Connection);
        Assert.InRange(before.OutOfSyncBytes, Dirtied * 9 / 10, Dirtied);

        await Cluster.RestartAsync("b");
        await Cluster.WaitInSyncAsync(volume);
        var sent = (await Cluster.VolumeAsync("a", volume)).ResyncSentBytes - before.ResyncSentBytes;
        output.WriteLine($"dirtied {Dirtied >> 20} MiB of random 4 KiB blocks over 1 GiB; the resync sent {sent / (double)(1 << 20):0.0} MiB ({sent / (double)Dirtied:0.00}x)");
        Assert.InRange(sent, Dirtied * 9 / 10, 2 * Dirtied);
        await VerifyBlocksThroughAsync(Cluster.Uri("b", volume), seed: 7);
        Assert.Equal(0, await Cluster.VerifyAsync(volume));
    }

    [Fact]
    public async Task A_resync_target_killed_mid_resync_finishes_after_its_restart()
    {
        var volume = await fixture.NewVolumeAsync("1G");
        await Cluster.KillAsync("b");
        await WriteRandomBlocksAsync(Cluster.Uri("a", volume), seed: 11);
        await Cluster.SendJsonAsync("a", HttpMethod.Put, $"/api/v1/volumes/{volume}/resync/settings", new { rateLimit = "8M" });

        await Cluster.RestartAsync("b");
        await TestCluster.WaitUntilAsync(async () =>
        {
            var a = await Cluster.VolumeAsync("a", volume);
            return a.Connection == "connected" && a.OutOfSyncBytes < Dirtied * 3 / 4;
        }, TimeSpan.FromSeconds(60), "the resync did not get going");
        var midway = await Cluster.VolumeAsync("a", volume);
        Assert.True(midway.OutOfSyncBytes > 0, "the resync finished before the kill; the test proved nothing");
        Assert.Equal("inconsistent", (await Cluster.VolumeAsync("b", volume)).DiskState);
        await Cluster.KillAsync("b");

        await Cluster.SendJsonAsync("a", HttpMethod.Put, $"/api/v1/volumes/{volume}/resync/settings", new { rateLimit = "0" });
        await Cluster.RestartAsync("b");
        await Cluster.WaitInSyncAsync(volume);
        var a = await Cluster.VolumeAsync("a", volume);
        output.WriteLine($"{midway.OutOfSyncBytes >> 20} MiB were still out of sync when the target was killed; the resync sent {a.ResyncSentBytes >> 20} MiB in all");
        await VerifyBlocksThroughAsync(Cluster.Uri("b", volume), seed: 11);
        Assert.Equal(0, await Cluster.VerifyAsync(volume));
    }

    [Fact]
    public async Task Pause_and_resume_steer_a_running_resync()
    {
        var volume = await fixture.NewVolumeAsync("1G");
        await Cluster.KillAsync("b");
        await WriteRandomBlocksAsync(Cluster.Uri("a", volume), seed: 13);
        var pause = await Cluster.CliAsync("resync", "pause", volume, "--node", "a");
        Assert.True(pause.ExitCode == 0, pause.Describe());
        await Cluster.RestartAsync("b");
        await TestCluster.WaitUntilAsync(async () => (await Cluster.VolumeAsync("a", volume)).Connection == "connected", TimeSpan.FromSeconds(30), "b did not reconnect");

        var status = await Cluster.CliAsync("resync", "status", volume, "--node", "a", "--json");
        using (var json = JsonDocument.Parse(status.Stdout))
        {
            Assert.Equal("paused", json.RootElement.GetProperty("resync").GetProperty("state").GetString());
        }

        await Task.Delay(1000);
        Assert.InRange((await Cluster.VolumeAsync("a", volume)).OutOfSyncBytes, Dirtied * 9 / 10, Dirtied);
        Assert.True((await Cluster.CliAsync("resync", "resume", volume, "--node", "a")).ExitCode == 0);
        await Cluster.WaitInSyncAsync(volume);
        Assert.Equal(0, await Cluster.VerifyAsync(volume));
    }

    [Fact]
    public async Task A_node_killed_during_a_write_storm_while_connected_resends_only_its_activity_log_extents()
    {
        // Node a orders this volume's writes and is the one killed.
        var volume = await fixture.NewVolumeAsync("1G", preferred: "a");
        var uri = Cluster.Uri("a", volume);
        var blocks = Enumerable.Range(0, 64).Select(i => (long)i * 2560 + 7).ToArray();
        // Round r writes pattern (block + r) % 250 + 1 to every block, so the number of writes
        // acknowledged for a block says which pattern it must hold.
        var writer = RunningTool.Start("qemu-io", ["-f", "raw",
            .. Enumerable.Range(0, 200).SelectMany(round => blocks.SelectMany(b => new[] { "-c", $"write -P {(b + round) % 250 + 1} {b * 4096} 4096" })), uri]);
        await using (writer)
        {
            await TestCluster.WaitUntilAsync(() => Task.FromResult(writer.CountLines(l => l.StartsWith("wrote", StringComparison.Ordinal)) > 2000),
                TimeSpan.FromSeconds(60), "the write storm did not get going");
            await Cluster.KillAsync("a");
            await writer.WaitAsync(TimeSpan.FromSeconds(30));
        }

        // The last pattern qemu-io reported acknowledged for each block.
        var acknowledged = new Dictionary<long, int>();
        foreach (var line in writer.Stdout.Split('\n').Where(l => l.StartsWith("wrote", StringComparison.Ordinal)))
        {
            var offset = long.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
            acknowledged[offset / 4096] = acknowledged.TryGetValue(offset / 4096, out var n) ? n + 1 : 1;
        }

        await Cluster.RestartAsync("a");
        await Cluster.WaitInSyncAsync(volume);
        var a = await Cluster.VolumeAsync("a", volume);
        var b = await Cluster.VolumeAsync("b", volume);
        var covered = a.ResyncCoveredBytes + b.ResyncCoveredBytes;
        var sent = a.ResyncSentBytes + b.ResyncSentBytes;
        const long extent = 4L << 20;
        var extents = blocks.Select(blk => blk * 4096 / extent).Distinct().Count();
        output.WriteLine($"kill -9 while connected: {covered / extent} activity-log extents of 4 MiB compared ({covered >> 20} MiB), {sent} bytes of data resent; " +
            $"the writes touched {extents} extents of the 1 GiB volume");
        Assert.True(covered > 0 && covered <= extents * extent, $"the resync covered {covered} bytes; the writes touched {extents} extents");
        Assert.True(sent <= blocks.Length * 4096, $"resent {sent} bytes of data, more than the {blocks.Length} blocks written");

        // Every acknowledged write reads back through both nodes: a block holds its last acknowledged pattern or a later one.
        foreach (var node in new[] { "a", "b" })
        {
            var check = await ExternalTool.RunAsync("qemu-io", ["-f", "raw", .. acknowledged.SelectMany(kv => new[] { "-c", $"read -v {kv.Key * 4096} 1" }), Cluster.Uri(node, volume)]);
            Assert.True(check.ExitCode == 0, check.Describe());
            var values = check.Stdout.Split('\n').Where(l => l.Length > 10 && l[8] == ':').Select(l => Convert.ToInt32(l.Substring(11, 2), 16)).ToList();
            Assert.Equal(acknowledged.Count, values.Count);
            var i = 0;
            foreach (var (block, count) in acknowledged)
            {
                var last = (int)((block + count - 1) % 250) + 1;
                var next = (int)((block + count) % 250) + 1;
                Assert.True(values[i] == last || values[i] == next, $"block {block} on {node} holds {values[i]:x2}, not its last acknowledged pattern {last:x2} (or the next, in flight)");
                i++;
            }
        }

        Assert.Equal(0, await Cluster.VerifyAsync(volume));
    }

    /// <summary>64 MiB of 4 KiB random writes over the whole volume, each block at most once, each acknowledged write checkable later.</summary>
    internal static async Task WriteRandomBlocksAsync(string uri, int seed)
    {
        var result = await Fio.RunAsync(uri, Path.GetTempPath(), $"dirty{seed}", RandomBlocksJob(seed, "--do_verify=0"));
        Assert.True(result.ExitCode == 0 && result.Errors == 0, result.Output);
        Assert.Equal(Dirtied, result.WrittenBytes);
    }

    internal static async Task VerifyBlocksThroughAsync(string uri, int seed)
    {
        var result = await Fio.RunAsync(uri, Path.GetTempPath(), $"dirty{seed}", RandomBlocksJob(seed, "--verify_only=1"));
        Assert.True(result.ExitCode == 0 && result.Errors == 0, result.Output);
    }

    private static string[] RandomBlocksJob(int seed, string mode) =>
        ["--rw=randwrite", "--bs=4k", "--size=1G", $"--io_size={Dirtied}", "--iodepth=16", "--verify=crc32c", $"--randseed={seed}", mode];
}

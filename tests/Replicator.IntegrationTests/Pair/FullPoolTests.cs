using System.Text.Json;
using Replicator.IntegrationTests.Harness;
using Xunit.Abstractions;

namespace Replicator.IntegrationTests.Pair;

/// <summary>
/// A pool that fills up for real on one node: its pool sits on a small loop-mounted ext4 file system, mostly
/// taken by a ballast file. A client writing through the gateway sees no error; the pair is visibly degraded
/// (status, admin API, metrics), the other node writes alone with the witness's vote, and once the ballast is
/// removed the node attaches its replica again by itself, the resync runs and verify finds no difference.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class FullPoolTests(ITestOutputHelper output)
{
    private const long FileSystem = 512L << 20;
    private const long LeftFree = 40L << 20;
    private const string Written = "192M";

    [Theory]
    [InlineData("b", "a")]
    [InlineData("a", "b")]
    public async Task A_full_pool_on_one_node_degrades_the_pair_visibly_the_client_sees_no_error_and_freed_space_brings_it_back(string full, string other)
    {
        await using var cluster = await TestCluster.StartWithSmallPoolAsync(full, FileSystem);
        var volume = await cluster.CreateVolumeAsync("fill", "1G", preferred: "a");
        await cluster.SmallPool!.FillAsync(LeftFree);

        // Through the gateway (which serves the volume from a), sequential writes with checksums to verify later.
        var write = await Fio.RunAsync(cluster.GatewayUri(volume), cluster.Directory, "fill", Job("--do_verify=0"));
        Assert.True(write.ExitCode == 0 && write.Errors == 0, write.Output);
        Assert.Equal(192L << 20, write.WrittenBytes);

        using (var fullView = await cluster.GetJsonAsync(full, $"/api/v1/volumes/{volume}"))
        using (var otherView = await cluster.GetJsonAsync(other, $"/api/v1/volumes/{volume}"))
        {
            var detached = fullView.RootElement.GetProperty("replication");
            var serving = otherView.RootElement.GetProperty("replication");
            output.WriteLine($"{full}: {detached}\n{other}: {serving}");
            Assert.Equal("connected", detached.GetProperty("connection").GetString());
            Assert.Equal("diskless", detached.GetProperty("diskState").GetString());
            Assert.Equal("pool-full", detached.GetProperty("detached").GetString());
            Assert.Contains("pool is full", detached.GetProperty("alert").GetString());
            Assert.Equal("up-to-date", serving.GetProperty("diskState").GetString());
            Assert.Equal(other, serving.GetProperty("writesOrderedBy").GetString());
            Assert.Contains($"{full}'s pool is full", serving.GetProperty("alert").GetString());
            Assert.True(serving.GetProperty("outOfSyncBytes").GetInt64() > 0);
        }

        var status = await cluster.CliAsync("status");
        Assert.True(status.ExitCode == 0, status.Describe());
        Assert.Contains($"{volume} degraded", status.Stdout);
        Assert.Contains("pool is full", status.Stdout);
        var metrics = await cluster.GetTextAsync(new Uri(cluster.Admin(full), "/metrics"), "text/plain");
        Assert.Contains($"replicator_replica_disk_detached{{reason=\"pool-full\",volume=\"{volume}\"}} 1", metrics);
        Assert.Contains($"replicator_replication_degraded{{volume=\"{volume}\"}} 1", await cluster.GetTextAsync(new Uri(cluster.Admin(other), "/metrics"), "text/plain"));
        Assert.Equal(other, await cluster.VoteHolderAsync(volume));

        var read = await Fio.RunAsync(cluster.GatewayUri(volume), cluster.Directory, "fill", Job("--verify_only=1"));
        Assert.True(read.ExitCode == 0 && read.Errors == 0, read.Output);

        // Space is freed: the node attaches its replica again by itself, and the other resyncs it.
        cluster.SmallPool.RemoveBallast();
        await cluster.WaitInSyncAsync(volume, TimeSpan.FromSeconds(120));
        Assert.Equal(0, await cluster.VerifyAsync(volume));
        var direct = await Fio.RunAsync(cluster.Uri(full, volume), cluster.Directory, "fill", Job("--verify_only=1"));
        Assert.True(direct.ExitCode == 0 && direct.Errors == 0, direct.Output);
        using var attached = await cluster.GetJsonAsync(full, $"/api/v1/volumes/{volume}");
        Assert.False(attached.RootElement.GetProperty("replication").TryGetProperty("detached", out var reason) && reason.ValueKind == JsonValueKind.String);
    }

    private static string[] Job(string mode) =>
        ["--rw=write", "--bs=1M", $"--size={Written}", "--iodepth=8", "--verify=crc32c", "--randseed=71", mode];
}

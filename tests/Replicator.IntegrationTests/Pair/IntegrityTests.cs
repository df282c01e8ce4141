using System.Text.Json;
using Replicator.IntegrationTests.Harness;
using Replicator.IntegrationTests.SingleNode;

namespace Replicator.IntegrationTests.Pair;

/// <summary>
/// Bytes flipped in a node's pool file under data a client wrote, as a disk returning wrong data would: reads
/// return the right data and heal the block from the other replica, a checksum resync and the scrub repair from
/// the good side, and a block bad on both replicas fails its reads with EIO, never with wrong bytes.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class IntegrityTests(ClusterFixture fixture) : IClassFixture<ClusterFixture>
{
    private const long Block = 4096;

    private TestCluster Cluster => fixture.Cluster;

    [Theory]
    [InlineData("a")]
    [InlineData("b")]
    public async Task A_byte_flipped_under_a_pattern_reads_back_right_through_that_node_and_the_gateway_and_is_healed(string node)
    {
        // The volume prefers the damaged node, so the gateway sends its reads there too.
        var volume = await fixture.NewVolumeAsync(preferred: node);
        await RealClientTests.QemuIo(Cluster.Uri(node, volume), "write -P 0xa5 0 1M");
        var first = (3 * Block) + 100;
        var second = (100 * Block) + 7;
        PoolFile.FlipByte(Cluster.DataDir(node), volume, first);
        PoolFile.FlipByte(Cluster.DataDir(node), volume, second);

        await RealClientTests.QemuIo(Cluster.Uri(node, volume), "read -P 0xa5 0 256K");
        await RealClientTests.QemuIo(Cluster.GatewayUri(volume), "read -P 0xa5 256K 768K");

        var integrity = await IntegrityAsync(node, volume);
        Assert.Equal((2, 2, 0), (integrity.GetProperty("detected").GetInt64(), integrity.GetProperty("healed").GetInt64(), integrity.GetProperty("unrecoverable").GetInt64()));
        Assert.Equal(0xa5, PoolFile.ReadByte(Cluster.DataDir(node), volume, first));
        Assert.Equal(0xa5, PoolFile.ReadByte(Cluster.DataDir(node), volume, second));
        Assert.Equal(0, await Cluster.VerifyAsync(volume));
    }

    [Fact]
    public async Task A_checksum_resync_after_bytes_flipped_on_the_node_that_orders_writes_leaves_both_replicas_right()
    {
        // Node a orders the volume's writes, so the checksum resync runs there, with the damage.
        var volume = await fixture.NewVolumeAsync(preferred: "a");
        await RealClientTests.QemuIo(Cluster.Uri("a", volume), "write -P 0x3c 0 2M");
        long[] flipped = [(5 * Block) + 1, (300 * Block) + 2];
        foreach (var offset in flipped)
        {
            PoolFile.FlipByte(Cluster.DataDir("a"), volume, offset);
        }

        var verify = await Cluster.CliAsync("verify", volume, "--json");
        Assert.True(verify.ExitCode == 1, verify.Describe());
        using (var report = JsonDocument.Parse(verify.Stdout))
        {
            var ranges = report.RootElement.GetProperty("differing").EnumerateArray().ToList();
            Assert.Equal(2, ranges.Count);
            Assert.All(ranges, r => Assert.Equal(["a"], r.GetProperty("damagedOn").EnumerateArray().Select(n => n.GetString())));
        }

        var repair = await Cluster.CliAsync("resync", "checksum", volume);
        Assert.True(repair.ExitCode == 0, repair.Describe());
        await Cluster.WaitInSyncAsync(volume);

        foreach (var node in new[] { "a", "b" })
        {
            foreach (var offset in flipped)
            {
                Assert.Equal(0x3c, PoolFile.ReadByte(Cluster.DataDir(node), volume, offset));
            }

            await RealClientTests.QemuIo(Cluster.Uri(node, volume), "read -P 0x3c 0 2M");
        }

        Assert.Equal(0, await Cluster.VerifyAsync(volume));
    }

    [Fact]
    public async Task A_block_flipped_on_both_replicas_fails_its_reads_with_an_io_error_and_verify_calls_it_unrecoverable()
    {
        var volume = await fixture.NewVolumeAsync(preferred: "a");
        await RealClientTests.QemuIo(Cluster.Uri("a", volume), "write -P 0x77 0 1M");
        PoolFile.FlipByte(Cluster.DataDir("a"), volume, (6 * Block) + 10);
        PoolFile.FlipByte(Cluster.DataDir("b"), volume, (6 * Block) + 20);

        foreach (var node in new[] { "a", "b" })
        {
            var read = await ExternalTool.RunAsync("qemu-io", ["-f", "raw", "-c", "read -P 0x77 0 1M", Cluster.Uri(node, volume)]);
            Assert.Contains("Input/output error", read.Stdout + read.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("Pattern verification failed", read.Stdout, StringComparison.Ordinal);
            await RealClientTests.QemuIo(Cluster.Uri(node, volume), "read -P 0x77 0 24K", "read -P 0x77 28K 996K");
        }

        var verify = await Cluster.CliAsync("verify", volume, "--json", "--region-size", "4K");
        Assert.True(verify.ExitCode == 1, verify.Describe());
        using var report = JsonDocument.Parse(verify.Stdout);
        Assert.Equal(1, report.RootElement.GetProperty("unrecoverableRegions").GetInt64());
        var range = Assert.Single(report.RootElement.GetProperty("differing").EnumerateArray());
        Assert.Equal(6 * Block, range.GetProperty("offset").GetInt64());
        Assert.Equal(["a", "b"], range.GetProperty("damagedOn").EnumerateArray().Select(n => n.GetString()).Order());
        var text = await Cluster.CliAsync("verify", volume);
        Assert.Contains("unrecoverable", text.Stdout, StringComparison.Ordinal);
        Assert.True((await IntegrityAsync("a", volume)).GetProperty("unrecoverable").GetInt64() >= 1);

        // Writing the block again (a restore) makes it readable on both.
        await RealClientTests.QemuIo(Cluster.Uri("b", volume), "write -P 0x77 24K 4K");
        await RealClientTests.QemuIo(Cluster.Uri("a", volume), "read -P 0x77 0 1M");
        Assert.Equal(0, await Cluster.VerifyAsync(volume));
    }

    [Fact]
    public async Task A_scrub_finds_and_heals_a_flipped_block_nobody_read_and_reports_it()
    {
        var volume = await fixture.NewVolumeAsync(preferred: "a");
        await RealClientTests.QemuIo(Cluster.Uri("a", volume), "write -P 0x19 8M 4M");
        var offset = (8L << 20) + (517 * Block) + 3;
        PoolFile.FlipByte(Cluster.DataDir("b"), volume, offset);

        var start = await Cluster.CliAsync("scrub", "start", volume, "--node", "b");
        Assert.True(start.ExitCode == 0, start.Describe());
        await TestCluster.WaitUntilAsync(async () =>
        {
            using var scrub = await Cluster.GetJsonAsync("b", $"/api/v1/volumes/{volume}/scrub");
            return scrub.RootElement.GetProperty("state").GetString() == "idle" && scrub.RootElement.GetProperty("lastPass").GetProperty("healed").GetInt64() == 1;
        }, TimeSpan.FromSeconds(60), "the scrub on b did not heal the block", () => Task.FromResult(Cluster.LogTails()));

        Assert.Equal(0x19, PoolFile.ReadByte(Cluster.DataDir("b"), volume, offset));
        var status = await Cluster.CliAsync("scrub", "status", volume);
        Assert.True(status.ExitCode == 0, status.Describe());
        Assert.Contains($"{volume} on b: scrub idle, last pass 1 damaged, 1 healed, 0 unrecoverable", status.Stdout, StringComparison.Ordinal);
        Assert.Contains("replicator_integrity_healed_total{volume=\"" + volume + "\"} 1", await Cluster.GetTextAsync(new Uri(Cluster.Admin("b"), "/metrics")), StringComparison.Ordinal);
        Assert.Equal(0, await Cluster.VerifyAsync(volume));
    }

    private async Task<JsonElement> IntegrityAsync(string node, string volume)
    {
        using var info = await Cluster.GetJsonAsync(node, $"/api/v1/volumes/{volume}");
        return info.RootElement.GetProperty("integrity").Clone();
    }
}

using Replicator.IntegrationTests.Harness;
using Xunit.Abstractions;

namespace Replicator.IntegrationTests.Pair;

/// <summary>
/// Real I/O errors on one node's disk, injected from outside into the running node with libfiu (every pwrite
/// and fsync of its process fails with EIO): the node detaches its replica and keeps its clients through its
/// peer, the client sees no error through the gateway nor through that node, status says so, and once the
/// disk is repaired and attached again by an admin the resync compares every region and verify finds no difference.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class DiskFailureTests(ITestOutputHelper output)
{
    [Fact]
    public async Task An_IO_error_on_a_nodes_disk_detaches_it_its_clients_see_no_error_and_the_repaired_disk_is_resynced()
    {
        await using var cluster = await TestCluster.StartAsync();
        var volume = await cluster.CreateVolumeAsync("eio", "1G", preferred: "a");
        var fiu = new LibFiu(cluster.Directory);
        await cluster.KillAsync("b");
        await cluster.RestartAsync("b", fiu.Wrapper);
        await cluster.WaitInSyncAsync(volume);
        var before = await Fio.RunAsync(cluster.GatewayUri(volume), cluster.Directory, "before", Job("0", seed: 81, "--do_verify=0"));
        Assert.True(before.ExitCode == 0 && before.Errors == 0, before.Output);

        // b's disk fails: every positioned write and every fsync of its process answers EIO from now on.
        await fiu.FailAsync(cluster.Pid("b"), LibFiu.DiskFailurePoints);
        var during = await Fio.RunAsync(cluster.GatewayUri(volume), cluster.Directory, "during", Job("256M", seed: 82, "--do_verify=0"));
        Assert.True(during.ExitCode == 0 && during.Errors == 0, during.Output);
        var throughB = await ExternalTool.RunAsync("qemu-io", ["-f", "raw", "-c", "write -P 0x5a 900M 1M", "-c", "flush", "-c", "read -P 0x5a 900M 1M", cluster.Uri("b", volume)]);
        Assert.True(throughB.ExitCode == 0 && !throughB.Stdout.Contains("error", StringComparison.OrdinalIgnoreCase), throughB.Describe());

        using (var bView = await cluster.GetJsonAsync("b", $"/api/v1/volumes/{volume}"))
        using (var aView = await cluster.GetJsonAsync("a", $"/api/v1/volumes/{volume}"))
        {
            var b = bView.RootElement.GetProperty("replication");
            var a = aView.RootElement.GetProperty("replication");
            output.WriteLine($"b: {b}\na: {a}");
            Assert.Equal("connected", b.GetProperty("connection").GetString());
            Assert.Equal("failed", b.GetProperty("detached").GetString());
            Assert.Contains("attach-disk", b.GetProperty("alert").GetString());
            Assert.Contains("b's disk failed", a.GetProperty("alert").GetString());
            Assert.Equal("a", a.GetProperty("writesOrderedBy").GetString());
        }

        var status = await cluster.CliAsync("status");
        Assert.Contains($"{volume} degraded", status.Stdout);
        Assert.Contains($"replicator_replica_disk_detached{{reason=\"failed\",volume=\"{volume}\"}} 1",
            await cluster.GetTextAsync(new Uri(cluster.Admin("b"), "/metrics"), "text/plain"));

        // Attaching the disk while it still fails is refused, and changes nothing.
        var refused = await cluster.CliAsync("volume", "attach-disk", volume, "--node", "b");
        Assert.True(refused.ExitCode == 4, refused.Describe());

        // The admin repairs the disk and attaches it again: every region is compared, what b missed is sent.
        await fiu.HealAsync(cluster.Pid("b"), LibFiu.DiskFailurePoints);
        var attach = await cluster.CliAsync("volume", "attach-disk", volume, "--node", "b");
        Assert.True(attach.ExitCode == 0, attach.Describe());
        await cluster.WaitInSyncAsync(volume, TimeSpan.FromSeconds(120));

        Assert.Equal(0, await cluster.VerifyAsync(volume));
        var a2 = await cluster.VolumeAsync("a", volume);
        output.WriteLine($"after the disk was attached again: a sent {a2.ResyncSentBytes >> 20} MiB, compared {a2.ResyncCoveredBytes >> 20} MiB");
        foreach (var (name, offset, seed) in new[] { ("before", "0", 81), ("during", "256M", 82) })
        {
            var check = await Fio.RunAsync(cluster.Uri("b", volume), cluster.Directory, name, Job(offset, seed, "--verify_only=1"));
            Assert.True(check.ExitCode == 0 && check.Errors == 0, check.Output);
        }

        var pattern = await ExternalTool.RunAsync("qemu-io", ["-f", "raw", "-c", "read -P 0x5a 900M 1M", cluster.Uri("b", volume)]);
        Assert.True(pattern.ExitCode == 0 && !pattern.Stdout.Contains("fail", StringComparison.OrdinalIgnoreCase), pattern.Describe());
    }

    private static string[] Job(string offset, int seed, string mode) =>
        ["--rw=randwrite", "--bs=64k", $"--offset={offset}", "--size=64M", "--iodepth=8", "--verify=crc32c", $"--randseed={seed}", mode];
}

using System.Diagnostics;
using Replicator.IntegrationTests.Harness;
using Replicator.IntegrationTests.SingleNode;
using Xunit.Abstractions;

namespace Replicator.IntegrationTests.Gateway;

/// <summary>
/// fio writes and verifies through the gateway while the node serving the volume is killed with SIGKILL and started
/// again: the client sees no error, its longest stall is measured, the gateway moves back once the node is up to
/// date, and the replicas match. Each test has a cluster of its own, since it kills a node of it.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class GatewayFailoverTests(ITestOutputHelper output)
{
    /// <summary>A hang fails the test; the 3 s target with default timeouts is reported, not asserted (speed is for benchmarks).</summary>
    private static readonly TimeSpan StallBound = TimeSpan.FromSeconds(10);

    [Theory]
    [InlineData("a", "b")]
    [InlineData("b", "a")]
    public async Task Killing_the_serving_node_under_fio_loses_nothing_and_the_gateway_moves_back_once_it_is_up_to_date(string victim, string survivor)
    {
        await using var cluster = await TestCluster.StartAsync();
        var volume = await GatewayHarness.CreateVolumeAsync(cluster, "gw" + victim, preferred: victim);

        var fio = GatewayHarness.VerifyingWritesAsync(cluster, volume, "failover", seed: victim == "a" ? 11 : 22, seconds: 30);
        await GatewayHarness.WaitActiveAsync(cluster, volume, victim, TimeSpan.FromSeconds(15));
        await Task.Delay(TimeSpan.FromSeconds(4));
        Assert.False(fio.IsCompleted, "fio ended before the node was killed");

        var killed = Stopwatch.StartNew();
        await cluster.KillAsync(victim);
        await GatewayHarness.WaitActiveAsync(cluster, volume, survivor, TimeSpan.FromSeconds(15), minSwitches: 1);
        output.WriteLine($"node {victim} killed; the gateway served {volume} from {survivor} {killed.ElapsedMilliseconds} ms later (as its status showed)");

        await Task.Delay(TimeSpan.FromSeconds(3));
        await cluster.RestartAsync(victim);
        output.WriteLine($"node {victim} restarted {killed.ElapsedMilliseconds} ms after the kill");

        await GatewayHarness.WaitActiveAsync(cluster, volume, victim, TimeSpan.FromSeconds(60), minSwitches: 2);
        output.WriteLine($"the gateway moved {volume} back to {victim} {killed.ElapsedMilliseconds} ms after the kill");
        Assert.False(fio.IsCompleted, "the gateway moved back only after fio had finished, so the failback was not made under load");

        var run = await fio;
        output.WriteLine($"fio: exit {run.ExitCode}, errors {run.Errors}, wrote {run.WrittenBytes >> 20} MiB, verified {run.ReadBytes >> 20} MiB");
        output.WriteLine($"longest I/O stall: {GatewayHarness.Ms(run.LongestStallMs)} (write completion max {GatewayHarness.Ms(run.MaxWriteMs)}, " +
            $"read completion max {GatewayHarness.Ms(run.MaxReadMs)}); target under 3000 ms, bound {StallBound.TotalMilliseconds} ms");
        Assert.True(run.ExitCode == 0 && run.Errors == 0, run.Output);
        Assert.True(run.WrittenBytes > 0 && run.ReadBytes > 0, run.Output);
        Assert.True(run.LongestStallMs < StallBound.TotalMilliseconds, $"an I/O took {GatewayHarness.Ms(run.LongestStallMs)}");

        var state = (await GatewayHarness.VolumeAsync(cluster, volume))!;
        output.WriteLine($"gateway: {state.Switches} switches, {state.ReissuedRequests} requests re-issued, last switch: {state.LastSwitchReason}");
        output.WriteLine($"paths: {state.Paths}");
        Assert.StartsWith("failback", state.LastSwitchReason, StringComparison.Ordinal);
        var metrics = await GatewayHarness.ScrapeAsync(cluster);
        Assert.Contains($"replicator_gateway_path_switches_total{{volume=\"{volume}\"}} {state.Switches}\n", metrics);
        Assert.Contains($"replicator_gateway_reissued_total{{volume=\"{volume}\"}} {state.ReissuedRequests}\n", metrics);
        Assert.Contains($"replicator_gateway_serving{{node=\"{victim}\",volume=\"{volume}\"}} 1\n", metrics);
        Assert.Contains($"replicator_gateway_serving{{node=\"{survivor}\",volume=\"{volume}\"}} 0\n", metrics);

        await RealClientTests.QemuIo(cluster.GatewayUri(volume), "write -P 0x3c 1M 64k", "read -P 0x3c 1M 64k");
        await cluster.WaitInSyncAsync(volume);
        Assert.Equal(0, await cluster.VerifyAsync(volume));
    }

    /// <summary>
    /// The gateway holds no state of its own (the nodes hold the data, the routing follows their status), so
    /// cluster up starts it again when it dies, and its crash is a pause for a client that reconnects, as QEMU
    /// does with <c>reconnect-delay</c>: the requests it had in flight are sent again, and none fails.
    /// </summary>
    [Fact]
    public async Task A_gateway_that_dies_is_started_again_and_is_only_a_pause_for_a_client_that_reconnects()
    {
        await using var cluster = await TestCluster.StartAsync();
        var volume = await GatewayHarness.CreateVolumeAsync(cluster, "gwrestart", preferred: "a");
        var image = $"driver=nbd,server.type=unix,server.path={cluster.GatewaySocket},export={volume},reconnect-delay=30";
        var io = ExternalTool.RunAsync("qemu-io", ["--image-opts", image, "-c", "write -P 0x5a 0 256M", "-c", "read -P 0x5a 0 256M"], TimeSpan.FromMinutes(2));
        await TestCluster.WaitUntilAsync(async () => (await cluster.VolumeAsync("a", volume)).AllocatedBytes >= 16 << 20,
            TimeSpan.FromSeconds(30), "qemu-io did not start writing");

        var firstPid = cluster.GatewayPid;
        var down = await cluster.KillGatewayAndWaitForItsRestartAsync();
        var allocated = (await cluster.VolumeAsync("a", volume)).AllocatedBytes;
        output.WriteLine($"gateway {firstPid} killed; cluster up started gateway {cluster.GatewayPid}, which served {down.TotalMilliseconds:0} ms later, " +
            $"with {allocated >> 20} MiB of the 256 MiB written");

        var run = await io;
        output.WriteLine(run.Describe());
        Assert.True(run.ExitCode == 0, run.Describe());
        Assert.Contains("wrote 268435456/268435456 bytes", run.Stdout, StringComparison.Ordinal);
        Assert.Contains("read 268435456/268435456 bytes", run.Stdout, StringComparison.Ordinal);
        Assert.Contains($"gateway (pid {firstPid}) exited on its own", await File.ReadAllTextAsync(Path.Combine(cluster.Directory, "test-cluster-up.log")));

        await cluster.WaitInSyncAsync(volume);
        Assert.Equal(0, await cluster.VerifyAsync(volume));
    }

    [Fact]
    public async Task A_node_that_stops_answering_is_failed_over_by_the_timeout_and_taken_back_once_it_resumes()
    {
        await using var cluster = await TestCluster.StartAsync();
        var volume = await GatewayHarness.CreateVolumeAsync(cluster, "gwhang", preferred: "a");
        var fio = GatewayHarness.VerifyingWritesAsync(cluster, volume, "hang", seed: 33, seconds: 30);
        await GatewayHarness.WaitActiveAsync(cluster, volume, "a", TimeSpan.FromSeconds(15));
        await Task.Delay(TimeSpan.FromSeconds(4));

        var pid = cluster.Pid("a");
        var stopped = Stopwatch.StartNew();
        ReplicatorProcess.SignalPid(pid, ReplicatorProcess.SigStop);
        try
        {
            await GatewayHarness.WaitActiveAsync(cluster, volume, "b", TimeSpan.FromSeconds(15), minSwitches: 1);
            output.WriteLine($"node a stopped (SIGSTOP); the gateway served {volume} from b {stopped.ElapsedMilliseconds} ms later");
            var failover = (await GatewayHarness.VolumeAsync(cluster, volume))!;
            output.WriteLine($"switch reason: {failover.LastSwitchReason}");
            Assert.Contains("waited", failover.LastSwitchReason, StringComparison.Ordinal);
            await Task.Delay(TimeSpan.FromSeconds(3));
        }
        finally
        {
            ReplicatorProcess.SignalPid(pid, ReplicatorProcess.SigCont);
        }

        await GatewayHarness.WaitActiveAsync(cluster, volume, "a", TimeSpan.FromSeconds(60), minSwitches: 2);
        output.WriteLine($"node a resumed; the gateway moved {volume} back {stopped.ElapsedMilliseconds} ms after the stop");
        Assert.False(fio.IsCompleted, "the gateway moved back only after fio had finished, so the failback was not made under load");

        var run = await fio;
        output.WriteLine($"fio: exit {run.ExitCode}, errors {run.Errors}, wrote {run.WrittenBytes >> 20} MiB, verified {run.ReadBytes >> 20} MiB");
        output.WriteLine($"longest I/O stall: {GatewayHarness.Ms(run.LongestStallMs)} (write completion max {GatewayHarness.Ms(run.MaxWriteMs)}, " +
            $"read completion max {GatewayHarness.Ms(run.MaxReadMs)}); a hung node costs the timeout (2 s) plus the nodes' own peer timeout");
        Assert.True(run.ExitCode == 0 && run.Errors == 0, run.Output);
        Assert.True(run.LongestStallMs < StallBound.TotalMilliseconds, $"an I/O took {GatewayHarness.Ms(run.LongestStallMs)}");

        await cluster.WaitInSyncAsync(volume);
        Assert.Equal(0, await cluster.VerifyAsync(volume));
    }

    [Fact]
    public async Task Changing_the_preferred_node_online_moves_the_volume_under_fio_without_an_error_and_not_faster_than_the_hold_down()
    {
        await using var cluster = await TestCluster.StartAsync();
        var volume = await GatewayHarness.CreateVolumeAsync(cluster, "gwprefer", preferred: "a");
        var fio = GatewayHarness.VerifyingWritesAsync(cluster, volume, "prefer", seed: 44, seconds: 25);
        await GatewayHarness.WaitActiveAsync(cluster, volume, "a", TimeSpan.FromSeconds(15));
        await Task.Delay(TimeSpan.FromSeconds(2));

        var toB = await cluster.CliAsync("volume", "prefer", volume, "--node", "b");
        Assert.True(toB.ExitCode == 0, toB.Describe());
        var moved = Stopwatch.StartNew();
        await GatewayHarness.WaitActiveAsync(cluster, volume, "b", TimeSpan.FromSeconds(15), minSwitches: 1);
        output.WriteLine($"preferred node set to b; the gateway moved {volume} there {moved.ElapsedMilliseconds} ms later");
        Assert.Equal("the preferred node is now b", (await GatewayHarness.VolumeAsync(cluster, volume))!.LastSwitchReason);

        moved.Restart();
        var toA = await cluster.CliAsync("volume", "prefer", volume, "--node", "a");
        Assert.True(toA.ExitCode == 0, toA.Describe());
        await GatewayHarness.WaitActiveAsync(cluster, volume, "a", TimeSpan.FromSeconds(30), minSwitches: 2);
        output.WriteLine($"preferred node set back to a; the gateway moved {volume} there {moved.ElapsedMilliseconds} ms later (hold-down 10 s)");
        Assert.True(moved.Elapsed >= TimeSpan.FromSeconds(9), $"moved back after {moved.Elapsed}, inside the hold-down");
        Assert.False(fio.IsCompleted, "fio ended before the second move");

        var run = await fio;
        output.WriteLine($"fio: exit {run.ExitCode}, errors {run.Errors}; longest I/O stall {GatewayHarness.Ms(run.LongestStallMs)}");
        Assert.True(run.ExitCode == 0 && run.Errors == 0, run.Output);
        Assert.True(run.LongestStallMs < StallBound.TotalMilliseconds, $"an I/O took {GatewayHarness.Ms(run.LongestStallMs)}");
        Assert.Equal(0, (await GatewayHarness.VolumeAsync(cluster, volume))!.ReissuedRequests);

        await cluster.WaitInSyncAsync(volume);
        Assert.Equal(0, await cluster.VerifyAsync(volume));
    }
}

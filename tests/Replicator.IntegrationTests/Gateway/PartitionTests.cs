using Replicator.IntegrationTests.Harness;
using Replicator.IntegrationTests.SingleNode;
using Xunit.Abstractions;

namespace Replicator.IntegrationTests.Gateway;

/// <summary>
/// The link between the nodes cut while both stay alive, with a witness, and fio verifying through
/// the gateway the whole time: exactly one node keeps accepting writes, the gateway goes on without
/// an error, and the other node catches up when the link heals. Links are relays the test
/// black-holes (see <see cref="TcpProxy"/>).
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class PartitionTests(ITestOutputHelper output)
{
    private static readonly TimeSpan StallBound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task With_the_link_cut_only_the_node_holding_the_witness_vote_writes_and_the_gateway_serves_from_it()
    {
        await using var cluster = await TestCluster.StartWithCuttableLinksAsync(witness: true);
        var volume = await GatewayHarness.CreateVolumeAsync(cluster, "part", preferred: "a");
        var fio = GatewayHarness.VerifyingWritesAsync(cluster, volume, "part", seed: 51, seconds: 22);
        await GatewayHarness.WaitActiveAsync(cluster, volume, "a", TimeSpan.FromSeconds(15));
        await Task.Delay(TimeSpan.FromSeconds(3));

        cluster.PeerLink!.Cut();
        await TestCluster.WaitUntilAsync(async () => (await cluster.VolumeAsync("a", volume)).Connection == "disconnected"
            && (await cluster.VolumeAsync("b", volume)).Connection == "disconnected", TimeSpan.FromSeconds(15), "the nodes did not notice the cut");

        // Whichever node the witness gave the vote to writes; the other may not, and serves no
        // reads either: from the moment it lost its peer it may be stale, before it learns it is.
        var holder = await cluster.VoteHolderAsync(volume);
        var other = holder == "a" ? "b" : "a";
        output.WriteLine($"the witness gave the vote for {volume} to {holder}");
        var unsure = await ExternalTool.RunAsync("qemu-io", ["-f", "raw", "-c", "read 0 4k", cluster.Uri(other, volume)]);
        Assert.Matches("Operation not permitted|Input/output error", unsure.Stdout + unsure.Stderr);
        var refused = await ExternalTool.RunAsync("qemu-io", ["-f", "raw", "-c", "write -P 0x55 200M 4k", cluster.Uri(other, volume)]);
        Assert.Contains("Operation not permitted", refused.Stdout + refused.Stderr);
        await TestCluster.WaitUntilAsync(async () => (await cluster.VolumeAsync(other, volume)).DiskState == "outdated", TimeSpan.FromSeconds(10), $"{other} did not learn it is outdated");
        var stale = await ExternalTool.RunAsync("qemu-io", ["-f", "raw", "-c", "read 0 4k", cluster.Uri(other, volume)]);
        Assert.Contains("Input/output error", stale.Stdout + stale.Stderr);
        var accepted = await ExternalTool.RunAsync("qemu-io", ["-f", "raw", "-c", "write -P 0x56 200M 4k", cluster.Uri(holder, volume)]);
        Assert.True(accepted.ExitCode == 0 && !accepted.Stdout.Contains("failed", StringComparison.Ordinal), accepted.Describe());
        await GatewayHarness.WaitActiveAsync(cluster, volume, holder, TimeSpan.FromSeconds(15));

        await Task.Delay(TimeSpan.FromSeconds(4));
        cluster.PeerLink.Heal();
        await FioPassedAndReplicasMatchAsync(cluster, volume, fio);
    }

    [Fact]
    public async Task A_node_that_has_not_yet_noticed_the_cut_serves_no_read_older_than_a_write_its_peer_acknowledged_alone()
    {
        // b declares a silent peer gone only after 8 s, a after 2 s: for some 6 s after a has taken
        // the vote and written alone, b still counts itself paired with a.
        await using var cluster = await TestCluster.StartWithCuttableLinksAsync(witness: true, new Dictionary<string, double> { ["b"] = 8 });
        var volume = await cluster.CreateVolumeAsync("lease", preferred: "a");
        await RealClientTests.QemuIo(cluster.Uri("a", volume), "write -P 0x11 0 4k");
        await RealClientTests.QemuIo(cluster.Uri("b", volume), "read -P 0x11 0 4k");
        Assert.Equal((true, true, 2000.0), await PeerLeaseAsync(cluster, "b"));

        cluster.PeerLink!.Cut();
        await RealClientTests.QemuIo(cluster.Uri("a", volume), "write -P 0x22 0 4k");
        Assert.Equal("connected", (await cluster.VolumeAsync("b", volume)).Connection);
        Assert.Equal((true, false, 2000.0), await PeerLeaseAsync(cluster, "b"));

        // b has had no read lease since a Pong went missing: its read waits for the link to end,
        // then b, without the vote, refuses it. It never returns the 0x11 that a has overwritten.
        var stale = await ExternalTool.RunAsync("qemu-io", ["-f", "raw", "-c", "read -P 0x11 0 4k", cluster.Uri("b", volume)]);
        output.WriteLine(stale.Describe());
        Assert.DoesNotContain("read 4096/4096 bytes", stale.Stdout, StringComparison.Ordinal);
        Assert.Matches("Operation not permitted|Input/output error", stale.Stdout + stale.Stderr);

        cluster.PeerLink.Heal();
        await cluster.WaitInSyncAsync(volume);
        Assert.Equal(0, await cluster.VerifyAsync(volume));
        await RealClientTests.QemuIo(cluster.Uri("b", volume), "read -P 0x22 0 4k");
    }

    [Fact]
    public async Task A_node_restarted_at_once_after_a_kill_the_cut_hid_waits_out_its_old_promise_before_writing_alone()
    {
        // Both nodes notice a silent peer only after 8 s; b asks for 6 s read leases, which a grants. So after
        // the cut b may read locally for up to 6 s more, on the promise a's killed process made.
        var slow = new Dictionary<string, double> { ["a"] = 8, ["b"] = 8 };
        await using var cluster = await TestCluster.StartWithCuttableLinksAsync(witness: true, slow, new Dictionary<string, double> { ["b"] = 6 });
        var volume = await cluster.CreateVolumeAsync("promise", preferred: "a");
        await RealClientTests.QemuIo(cluster.Uri("a", volume), "write -P 0x11 0 4k");
        await RealClientTests.QemuIo(cluster.Uri("b", volume), "read -P 0x11 0 4k");

        cluster.PeerLink!.Cut();
        var cut = System.Diagnostics.Stopwatch.StartNew();
        await cluster.KillAsync("a");
        await cluster.RestartAsync("a");
        output.WriteLine($"node a killed and serving again {cut.ElapsedMilliseconds} ms after the cut");

        // The new process of a cannot reach b; it takes the witness's vote and writes alone, but only once the
        // longest promise its previous process could have made has run out.
        await RealClientTests.QemuIo(cluster.Uri("a", volume), "write -P 0x22 0 4k");
        output.WriteLine($"a acknowledged its write alone {cut.ElapsedMilliseconds} ms after the cut");

        var stale = await ExternalTool.RunAsync("qemu-io", ["-f", "raw", "-c", "read -P 0x11 0 4k", cluster.Uri("b", volume)]);
        output.WriteLine(stale.Describe());
        Assert.DoesNotContain("read 4096/4096 bytes", stale.Stdout, StringComparison.Ordinal);

        cluster.PeerLink.Heal();
        await cluster.WaitInSyncAsync(volume);
        Assert.Equal(0, await cluster.VerifyAsync(volume));
        await RealClientTests.QemuIo(cluster.Uri("b", volume), "read -P 0x22 0 4k");
    }

    /// <summary>What a node's resource says of its peer link: connected, holding the read lease, and the lease it asks for (a quarter of its keepalive timeout).</summary>
    private static async Task<(bool Connected, bool Held, double LeaseMs)> PeerLeaseAsync(TestCluster cluster, string node)
    {
        using var json = await cluster.GetJsonAsync(node, "/api/v1/node");
        var peer = json.RootElement.GetProperty("peer");
        return (peer.GetProperty("connected").GetBoolean(), peer.GetProperty("readLeaseHeld").GetBoolean(), peer.GetProperty("readLeaseMs").GetDouble());
    }

    [Fact]
    public async Task A_node_cut_from_both_its_peer_and_the_witness_stops_writing_and_the_gateway_moves_to_the_other()
    {
        await using var cluster = await TestCluster.StartWithCuttableLinksAsync(witness: true);
        var volume = await GatewayHarness.CreateVolumeAsync(cluster, "isolated", preferred: "a");
        var fio = GatewayHarness.VerifyingWritesAsync(cluster, volume, "isolated", seed: 52, seconds: 25);
        await GatewayHarness.WaitActiveAsync(cluster, volume, "a", TimeSpan.FromSeconds(15));
        await Task.Delay(TimeSpan.FromSeconds(3));

        cluster.WitnessLink("a").Cut();
        cluster.PeerLink!.Cut();
        await GatewayHarness.WaitActiveAsync(cluster, volume, "b", TimeSpan.FromSeconds(20), minSwitches: 1);
        var state = (await GatewayHarness.VolumeAsync(cluster, volume))!;
        output.WriteLine($"a lost its peer and the witness; the gateway moved to b: {state.LastSwitchReason}");
        var direct = await ExternalTool.RunAsync("qemu-io", ["-f", "raw", "-c", "write -P 0x57 200M 4k", cluster.Uri("a", volume)]);
        Assert.Contains("Operation not permitted", direct.Stdout + direct.Stderr);

        await Task.Delay(TimeSpan.FromSeconds(4));
        cluster.WitnessLink("a").Heal();
        cluster.PeerLink.Heal();
        await FioPassedAndReplicasMatchAsync(cluster, volume, fio);
    }

    [Fact]
    public async Task A_link_that_flaps_twenty_times_in_a_minute_loses_no_write_and_does_not_thrash()
    {
        await using var cluster = await TestCluster.StartWithCuttableLinksAsync(witness: true);
        var volume = await GatewayHarness.CreateVolumeAsync(cluster, "flap", preferred: "a");
        var fio = GatewayHarness.VerifyingWritesAsync(cluster, volume, "flap", seed: 53, seconds: 66);
        await GatewayHarness.WaitActiveAsync(cluster, volume, "a", TimeSpan.FromSeconds(15));
        var connectsBefore = await ConnectsAsync(cluster);

        for (var flap = 0; flap < 20; flap++)
        {
            cluster.PeerLink!.Cut();
            await Task.Delay(TimeSpan.FromMilliseconds(2000));
            cluster.PeerLink.Heal();
            await Task.Delay(TimeSpan.FromMilliseconds(1000));
        }

        await FioPassedAndReplicasMatchAsync(cluster, volume, fio, TimeSpan.FromSeconds(90));

        var state = (await GatewayHarness.VolumeAsync(cluster, volume))!;
        var a = await cluster.VolumeAsync("a", volume);
        var b = await cluster.VolumeAsync("b", volume);
        var reconnects = await ConnectsAsync(cluster) - connectsBefore;
        output.WriteLine($"20 flaps in 60 s: {reconnects} reconnects of the peer link, {a.ResyncsCompleted + b.ResyncsCompleted} resyncs completed " +
            $"({(a.ResyncSentBytes + b.ResyncSentBytes) >> 20} MiB sent), {state.Switches} gateway path switches");
        Assert.True(reconnects <= 20, $"{reconnects} reconnects for 20 flaps");
        Assert.True(state.Switches <= 20, $"the gateway switched paths {state.Switches} times");
    }

    private static async Task<int> ConnectsAsync(TestCluster cluster)
    {
        using var node = await cluster.GetJsonAsync("a", "/api/v1/node");
        return node.RootElement.GetProperty("peer").GetProperty("connects").GetInt32();
    }

    /// <summary>The link healed: fio saw no error and no stall too long, and once the resync is done the replicas match.</summary>
    private async Task FioPassedAndReplicasMatchAsync(TestCluster cluster, string volume, Task<FioRun> fio, TimeSpan? resyncTimeout = null)
    {
        Report(await fio);
        await cluster.WaitInSyncAsync(volume, resyncTimeout);
        Assert.Equal(0, await cluster.VerifyAsync(volume));
    }

    private void Report(FioRun run)
    {
        output.WriteLine($"fio: exit {run.ExitCode}, errors {run.Errors}, wrote {run.WrittenBytes >> 20} MiB, verified {run.ReadBytes >> 20} MiB, longest stall {GatewayHarness.Ms(run.LongestStallMs)}");
        Assert.True(run.ExitCode == 0 && run.Errors == 0, run.Output);
        Assert.True(run.LongestStallMs < StallBound.TotalMilliseconds, $"an I/O took {GatewayHarness.Ms(run.LongestStallMs)}");
    }
}

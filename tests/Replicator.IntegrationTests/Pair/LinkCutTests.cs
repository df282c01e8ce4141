using Replicator.IntegrationTests.Harness;
using Replicator.IntegrationTests.SingleNode;
using Xunit.Abstractions;

namespace Replicator.IntegrationTests.Pair;

/// <summary>
/// The link between the nodes cut while both stay alive (a relay the test black-holes; see
/// <see cref="TcpProxy"/> for why a relay): without a witness both keep writing, which is a
/// split brain that must be reported, never resolved silently; a cut that heals resyncs only
/// what changed.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class LinkCutTests(ITestOutputHelper output)
{
    private const long Dirtied = 64L << 20;

    [Fact]
    public async Task After_a_cut_link_heals_only_the_regions_written_meanwhile_are_resent()
    {
        await using var cluster = await TestCluster.StartWithCuttableLinksAsync(witness: false);
        var volume = await cluster.CreateVolumeAsync("cut", "1G");
        cluster.PeerLink!.Cut();
        await TestCluster.WaitUntilAsync(async () => (await cluster.VolumeAsync("a", volume)).Connection == "disconnected", TimeSpan.FromSeconds(15), "a did not notice the cut");
        await ResyncTests.WriteRandomBlocksAsync(cluster.Uri("a", volume), seed: 21);
        cluster.PeerLink.Heal();

        await cluster.WaitInSyncAsync(volume);
        var sent = (await cluster.VolumeAsync("a", volume)).ResyncSentBytes;
        output.WriteLine($"link cut: dirtied {Dirtied >> 20} MiB of random 4 KiB blocks over 1 GiB; the resync sent {sent / (double)(1 << 20):0.0} MiB ({sent / (double)Dirtied:0.00}x)");
        Assert.InRange(sent, Dirtied * 9 / 10, 2 * Dirtied);
        await ResyncTests.VerifyBlocksThroughAsync(cluster.Uri("b", volume), seed: 21);
        Assert.Equal(0, await cluster.VerifyAsync(volume));
    }

    [Fact]
    public async Task Both_sides_writing_while_cut_is_reported_as_split_brain_and_resolved_only_by_an_admin()
    {
        await using var cluster = await TestCluster.StartWithCuttableLinksAsync(witness: false);
        var volume = await cluster.CreateVolumeAsync("split", "256M");
        await RealClientTests.QemuIo(cluster.Uri("a", volume), "write -P 0x10 0 1M");
        cluster.PeerLink!.Cut();
        await TestCluster.WaitUntilAsync(async () =>
            (await cluster.VolumeAsync("a", volume)).Connection == "disconnected" && (await cluster.VolumeAsync("b", volume)).Connection == "disconnected",
            TimeSpan.FromSeconds(15), "the nodes did not notice the cut");

        await RealClientTests.QemuIo(cluster.Uri("a", volume), "write -P 0xaa 8M 2M");
        await RealClientTests.QemuIo(cluster.Uri("b", volume), "write -P 0xbb 20M 1M", "write -P 0xbc 0 64k");
        cluster.PeerLink.Heal();

        string? problem = null;
        await TestCluster.WaitUntilAsync(async () =>
        {
            using var json = await cluster.GetJsonAsync("a", $"/api/v1/volumes/{volume}");
            var replication = json.RootElement.GetProperty("replication");
            problem = replication.GetProperty("problem").GetString();
            return replication.GetProperty("connection").GetString() == "unpaired" && problem is not null;
        }, TimeSpan.FromSeconds(30), "the split brain was not reported");
        output.WriteLine($"reported: {problem}");
        Assert.Contains("split brain", problem);
        var a = await cluster.VolumeAsync("a", volume);
        var b = await cluster.VolumeAsync("b", volume);
        Assert.Equal(2L << 20, a.OutOfSyncBytes);
        Assert.Equal((1L << 20) + (64 << 10), b.OutOfSyncBytes);

        // Nothing crossed: each side still has only its own writes.
        await RealClientTests.QemuIo(cluster.Uri("b", volume), "read -P 0 8M 2M", "read -P 0xbb 20M 1M", "read -P 0xbc 0 64k");
        await RealClientTests.QemuIo(cluster.Uri("a", volume), "read -P 0xaa 8M 2M", "read -P 0 20M 1M", "read -P 0x10 0 1M");
        var status = await cluster.CliAsync("status");
        Assert.Contains("split brain", status.Stdout);

        var resolve = await cluster.CliAsync("resync", "resolve", volume, "--discard", "b");
        Assert.True(resolve.ExitCode == 0, resolve.Describe());
        await cluster.WaitInSyncAsync(volume);
        await RealClientTests.QemuIo(cluster.Uri("b", volume), "read -P 0xaa 8M 2M", "read -P 0 20M 1M", "read -P 0x10 0 1M");
        Assert.Equal(0, await cluster.VerifyAsync(volume));
    }
}

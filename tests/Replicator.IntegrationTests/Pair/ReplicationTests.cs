using Replicator.IntegrationTests.Harness;
using Replicator.IntegrationTests.SingleNode;

namespace Replicator.IntegrationTests.Pair;

/// <summary>Synchronous replication through <c>cluster up</c>, checked with real clients and <c>replicator verify</c>.</summary>
[Collection(IntegrationCollection.Name)]
public sealed class ReplicationTests(ClusterFixture fixture) : IClassFixture<ClusterFixture>
{
    private TestCluster Cluster => fixture.Cluster;

    [Fact]
    public async Task A_pattern_written_through_one_node_reads_back_through_the_other_both_ways()
    {
        var volume = await fixture.NewVolumeAsync();
        await RealClientTests.QemuIo(Cluster.Uri("a", volume), "write -P 0x5a 0 1M", "write -P 0x6b 100M 64k");
        await RealClientTests.QemuIo(Cluster.Uri("b", volume), "read -P 0x5a 0 1M", "read -P 0x6b 100M 64k", "read -P 0 1M 99M");
        await RealClientTests.QemuIo(Cluster.UnixUri("b", volume), "write -P 0x7c 50M 3M");
        await RealClientTests.QemuIo(Cluster.UnixUri("a", volume), "read -P 0x7c 50M 3M", "read -P 0x5a 0 1M");
        Assert.Equal(0, await Cluster.VerifyAsync(volume));
    }

    [Fact]
    public async Task Fio_writes_through_a_and_verifies_through_b()
    {
        var volume = await fixture.NewVolumeAsync();
        string[] job = ["--rw=randwrite", "--bs=4k", "--size=64M", "--iodepth=16", "--verify=crc32c", "--randseed=1234"];
        var write = await Fio.RunAsync(Cluster.Uri("a", volume), Cluster.Directory, "replicate", [.. job, "--do_verify=0"]);
        Assert.True(write.ExitCode == 0 && write.Errors == 0, write.Output);
        var verify = await Fio.RunAsync(Cluster.Uri("b", volume), Cluster.Directory, "replicate", [.. job, "--verify_only=1"]);
        Assert.True(verify.ExitCode == 0 && verify.Errors == 0, verify.Output);
        Assert.True(verify.ReadBytes >= 64L << 20, $"fio verified only {verify.ReadBytes} bytes");
        Assert.Equal(0, await Cluster.VerifyAsync(volume));
    }

    [Fact]
    public async Task A_trim_through_b_is_a_hole_on_a_and_frees_its_space()
    {
        var volume = await fixture.NewVolumeAsync();
        await RealClientTests.QemuIo(Cluster.Uri("a", volume), "write -P 0x11 8M 4M");
        Assert.Equal(4L << 20, (await Cluster.VolumeAsync("b", volume)).AllocatedBytes);
        await RealClientTests.QemuIo(Cluster.Uri("b", volume), "discard 8M 4M");
        Assert.Equal([(0L, 256L << 20, "hole,zero")], await RealClientTests.MapAsync(Cluster.Uri("a", volume)));
        Assert.Equal(0, (await Cluster.VolumeAsync("a", volume)).AllocatedBytes);
        Assert.Equal(0, (await Cluster.VolumeAsync("b", volume)).AllocatedBytes);
        Assert.Equal(0, await Cluster.VerifyAsync(volume));
    }

    [Fact]
    public async Task Verify_counts_the_regions_corrupted_in_one_replicas_pool_file()
    {
        // Node a orders this volume's writes, so the checksum resync at the end repairs b from a.
        var volume = await fixture.NewVolumeAsync(preferred: "a");
        await RealClientTests.QemuIo(Cluster.Uri("a", volume), "write -P 0xa7 0 64k", "write -P 0xa7 10M 64k", "write -P 0xa7 20M 64k", "write -P 0x33 30M 64k");
        await Cluster.StopAsync("b");

        var pool = Path.Combine(Cluster.DataDir("b"), "pool", "data-000.img");
        var corrupted = PoolFile.FlipByteInEveryRun(pool, 0xa7, 64 << 10);
        Assert.Equal(3, corrupted);

        await Cluster.RestartAsync("b");
        await Cluster.WaitInSyncAsync(volume);
        var result = await Cluster.CliAsync("verify", volume);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"{volume}: 3 differing region(s)", result.Stdout);
        Assert.Equal(3, await Cluster.VerifyAsync(volume));

        // A checksum resync from the node that orders the volume (a) repairs exactly those regions on b.
        var repair = await Cluster.CliAsync("resync", "checksum", volume);
        Assert.True(repair.ExitCode == 0, repair.Describe());
        await Cluster.WaitInSyncAsync(volume);
        Assert.Equal(0, await Cluster.VerifyAsync(volume));
        await RealClientTests.QemuIo(Cluster.Uri("b", volume), "read -P 0xa7 0 64k", "read -P 0xa7 10M 64k", "read -P 0xa7 20M 64k", "read -P 0x33 30M 64k");
    }

    [Fact]
    public async Task A_volume_created_and_written_while_b_is_down_is_copied_to_b_when_it_returns_and_replicates_from_then_on()
    {
        await Cluster.StopAsync("b");
        var create = await Cluster.CliAsync("volume", "create", "made-alone", "--size", "64M");
        Assert.True(create.ExitCode == 0, create.Describe());
        await RealClientTests.QemuIo(Cluster.Uri("a", "made-alone"), "write -P 0x5c 1M 1M");

        await Cluster.RestartAsync("b");
        await TestCluster.WaitUntilAsync(async () =>
        {
            using var volumes = await Cluster.GetJsonAsync("b", "/api/v1/volumes");
            return volumes.RootElement.EnumerateArray().Any(v => v.GetProperty("name").GetString() == "made-alone");
        }, TimeSpan.FromSeconds(30), "b did not get a replica of the volume made while it was down");
        await Cluster.WaitInSyncAsync("made-alone");
        await RealClientTests.QemuIo(Cluster.Uri("b", "made-alone"), "read -P 0x5c 1M 1M", "write -P 0x6d 9M 64k");
        await RealClientTests.QemuIo(Cluster.Uri("a", "made-alone"), "read -P 0x6d 9M 64k");
        Assert.Equal(0, await Cluster.VerifyAsync("made-alone"));
    }

    [Fact]
    public async Task Killing_b_while_fio_writes_through_a_loses_no_acknowledged_write_and_b_catches_up()
    {
        var volume = await fixture.NewVolumeAsync();
        string[] job = ["--rw=randwrite", "--bs=4k", "--size=64M", "--iodepth=8", "--verify=crc32c", "--randseed=99", "--time_based=1", "--runtime=8"];
        var fio = Fio.RunAsync(Cluster.Uri("a", volume), Cluster.Directory, "survive", [.. job, "--do_verify=1", "--verify_fatal=1"]);
        await Task.Delay(2500);
        await Cluster.KillAsync("b");
        var result = await fio;
        Assert.True(result.ExitCode == 0 && result.Errors == 0, result.Output);

        var a = await Cluster.VolumeAsync("a", volume);
        Assert.Equal("disconnected", a.Connection);
        Assert.True(a.OutOfSyncBytes > 0, "writes after the kill were not recorded as out of sync");

        await Cluster.RestartAsync("b");
        await Cluster.WaitInSyncAsync(volume);
        Assert.Equal(0, await Cluster.VerifyAsync(volume));
    }
}

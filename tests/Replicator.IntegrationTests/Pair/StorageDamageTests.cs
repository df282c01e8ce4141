using Replicator.IntegrationTests.Harness;
using Replicator.IntegrationTests.SingleNode;

namespace Replicator.IntegrationTests.Pair;

/// <summary>A node's storage metadata damaged while it was stopped: it refuses to start, changes nothing, and the documented recovery brings it back.</summary>
[Collection(IntegrationCollection.Name)]
public sealed class StorageDamageTests
{
    [Fact]
    public async Task A_journal_damaged_in_the_middle_keeps_the_node_from_starting_punches_nothing_and_the_rebuild_brings_it_back()
    {
        await using var cluster = await TestCluster.StartAsync();
        var volume = await cluster.CreateVolumeAsync("archive", "256M", preferred: "b");
        await RealClientTests.QemuIo(cluster.Uri("b", volume), "write -P 0x6e 0 8M");

        // kill -9: node a's journal keeps the volume's records (a clean stop would fold them into a snapshot).
        await cluster.KillAsync("a");
        var places = new[] { 0L, 4L << 20, (8L << 20) - 1 }.Select(offset => PoolFile.Locate(cluster.DataDir("a"), volume, offset)).ToList();
        var journal = Directory.GetFiles(Path.Combine(cluster.DataDir("a"), "pool"), "journal.*").Order().Last();
        var bytes = await File.ReadAllBytesAsync(journal);
        Assert.True(bytes.Length > 200, $"{journal} holds only {bytes.Length} bytes");
        bytes[12] ^= 0x20;
        await File.WriteAllBytesAsync(journal, bytes);

        var start = await ReplicatorProcess.RunAsync(["node", "run", "--dir", cluster.DataDir("a")], TimeSpan.FromSeconds(60));
        var said = start.Stdout + start.Stderr;
        Assert.True(start.ExitCode != 0, start.Describe());
        Assert.Contains("journal", said, StringComparison.Ordinal);
        Assert.Contains("that is not a torn tail", said, StringComparison.Ordinal);
        Assert.Contains("replicator node rebuild --dir", said, StringComparison.Ordinal);
        foreach (var (file, at) in places)
        {
            using var handle = File.OpenHandle(file);
            var one = new byte[1];
            RandomAccess.Read(handle, one, at);
            Assert.Equal(0x6e, one[0]);
        }

        Assert.Equal(bytes, await File.ReadAllBytesAsync(journal));

        var refused = await ReplicatorProcess.RunAsync(["node", "rebuild", "--dir", cluster.DataDir("a")]);
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("--yes", refused.Stderr, StringComparison.Ordinal);
        var rebuild = await ReplicatorProcess.RunAsync(["node", "rebuild", "--dir", cluster.DataDir("a"), "--yes"]);
        Assert.True(rebuild.ExitCode == 0, rebuild.Describe());
        Assert.Single(Directory.GetDirectories(cluster.DataDir("a"), "damaged-*"));

        await cluster.RestartAsync("a");
        await cluster.WaitInSyncAsync(volume, TimeSpan.FromSeconds(120));
        await cluster.WaitInSyncAsync("vol0", TimeSpan.FromSeconds(120));
        await RealClientTests.QemuIo(cluster.Uri("a", volume), "read -P 0x6e 0 8M", "read -P 0 8M 8M");
        Assert.Equal(0, await cluster.VerifyAsync(volume));
        Assert.Equal(0, await cluster.VerifyAsync("vol0"));
    }
}

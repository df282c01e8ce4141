using Replicator.Core.Devices;
using Replicator.Core.Replication;
using Replicator.Core.Tests.Replication.Support;
using static Replicator.Core.Tests.Replication.Support.ReplicaData;

namespace Replicator.Core.Tests.Replication;

/// <summary>Online verify: compares the replicas by content, region by region, and names exactly the regions that differ.</summary>
public sealed class VolumeVerifierTests
{
    private const int Unit = ReplicaSide.UnitSize;
    private static readonly TimeSpan Timeout = ReplicaPair.Timeout;

    [Theory]
    [InlineData("A")]
    [InlineData("B")]
    public async Task Identical_replicas_have_no_differing_region(string from)
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        await pair.A.Volume.WriteAsync(0, Pattern(3 * Unit, seed: 50), IoFlags.None);
        await pair.B.Volume.WriteAsync(5 * Unit + 100, Pattern(10_000, seed: 51), IoFlags.None);
        await pair.B.Volume.TrimAsync(Unit, Unit, IoFlags.None);

        var report = await new VolumeVerifier(pair.Side(from).Volume).RunAsync(CancellationToken.None).WaitAsync(Timeout);

        Assert.Equal(VerifyState.Completed, report.State);
        Assert.Equal(pair.A.Thin.Size, report.CheckedBytes);
        Assert.Equal(0, report.DifferingRegions);
        Assert.Empty(report.Differing);
        Assert.Null(report.Error);
    }

    [Theory]
    [InlineData(4096, 3, 0, 2 * 4096, 3 * Unit + 4096, 4096)]
    [InlineData(Unit, 2, 0, Unit, 3 * Unit, Unit)]
    public async Task Bytes_corrupted_on_one_replica_are_reported_as_exactly_their_regions(
        int regionSize, long differing, long firstOffset, long firstLength, long secondOffset, long secondLength)
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        await pair.A.Volume.WriteAsync(0, Pattern(4 * Unit, seed: 52), IoFlags.None);

        pair.B.Corrupt(100);
        pair.B.Corrupt(4096 + 7);
        pair.B.Corrupt(3 * Unit + 5000);
        var report = await new VolumeVerifier(pair.A.Volume, regionSize).RunAsync(CancellationToken.None).WaitAsync(Timeout);

        Assert.Equal(VerifyState.Completed, report.State);
        Assert.Equal(differing, report.DifferingRegions);
        Assert.Equal([new DifferingRange(firstOffset, firstLength, DamagedReplica.Peer), new DifferingRange(secondOffset, secondLength, DamagedReplica.Peer)], report.Differing);
    }

    [Fact]
    public async Task A_hole_and_written_zeros_compare_equal()
    {
        await using var pair = await ReplicaPair.ConnectedAsync();
        await pair.B.Thin.WriteAsync(2 * Unit, new byte[Unit], IoFlags.None);
        Assert.NotEqual(pair.A.Thin.AllocatedBytes, pair.B.Thin.AllocatedBytes);

        var report = await new VolumeVerifier(pair.A.Volume).RunAsync(CancellationToken.None).WaitAsync(Timeout);

        Assert.Equal(0, report.DifferingRegions);
    }

    [Fact]
    public async Task Verify_without_the_peer_fails_and_says_why()
    {
        await using var pair = ReplicaPair.Create();

        var report = await new VolumeVerifier(pair.A.Volume).RunAsync(CancellationToken.None).WaitAsync(Timeout);

        Assert.Equal(VerifyState.Failed, report.State);
        Assert.Contains("not connected", report.Error);
    }
}

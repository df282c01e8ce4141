using Replicator.IntegrationTests.Harness;

namespace Replicator.IntegrationTests.Pair;

/// <summary>
/// TRIM and WRITE_ZEROES carry a 32-bit length: up to 4 GiB - 1 in one request, more than an int holds.
/// Each must be done, not only acknowledged, on a node and through the gateway, on both replicas.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class LargeRangeTests(ClusterFixture fixture) : IClassFixture<ClusterFixture>
{
    private const long Range = (2L << 30) + 8192;

    private TestCluster Cluster => fixture.Cluster;

    [Theory]
    [InlineData("zero", "node")]
    [InlineData("trim", "node")]
    [InlineData("zero", "gateway")]
    [InlineData("trim", "gateway")]
    public async Task A_request_over_more_than_2_GiB_clears_the_whole_range_on_both_replicas(string command, string through)
    {
        var volume = await fixture.NewVolumeAsync("8G");
        var uri = through == "gateway" ? Cluster.GatewayUri(volume) : Cluster.Uri("a", volume);

        // A pattern at the start, one in the last 4 KiB of the range and one just past it.
        await Nbdsh(uri, $$"""
            for offset in (0, {{Range - 4096}}, {{Range}}):
                h.pwrite(b'\xab' * 4096, offset)
            h.{{command}}({{Range}}, 0)
            h.flush()
            """);

        foreach (var node in new[] { "a", "b" })
        {
            await Nbdsh(Cluster.Uri(node, volume), $$"""
                assert h.pread(4096, 0) == bytes(4096), 'the start of the range still holds data'
                assert h.pread(4096, {{Range - 4096}}) == bytes(4096), 'the end of the range still holds data'
                assert h.pread(4096, {{Range}}) == b'\xab' * 4096, 'the block past the range lost its data'
                """);
        }

        Assert.Equal(0, await Cluster.VerifyAsync(volume));
    }

    private static async Task Nbdsh(string uri, string script) =>
        await ExternalTool.RunCheckedAsync("nbdsh", ["-u", uri, "-c", script], TimeSpan.FromMinutes(2));
}

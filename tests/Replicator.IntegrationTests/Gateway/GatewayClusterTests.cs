using System.Text.Json;
using Replicator.IntegrationTests.Harness;
using Replicator.IntegrationTests.SingleNode;

namespace Replicator.IntegrationTests.Gateway;

/// <summary>
/// The gateway as <c>cluster up</c> runs it: listed in cluster.json, real clients through it, attached to a volume on
/// the nodes only while a client uses it (so a volume can be deleted), same endpoints after a restart.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class GatewayClusterTests
{
    [Fact]
    public async Task Cluster_up_serves_every_volume_through_its_gateway_lets_go_of_unused_ones_and_keeps_its_endpoints_across_a_restart()
    {
        var directory = Directory.CreateTempSubdirectory("replicator-gateway-").FullName;
        try
        {
            string unix, tcp;
            await using (var first = await TestCluster.StartAsync(directory))
            {
                unix = first.GatewayUri("vol0");
                tcp = first.GatewayTcpUri("vol0");
                Assert.StartsWith("nbds://127.0.0.1:", tcp, StringComparison.Ordinal);
                Assert.NotEqual(first.Pid("a"), first.GatewayPid);

                var info = await ExternalTool.RunCheckedAsync("nbdinfo", ["--json", unix]);
                using (var json = JsonDocument.Parse(info.Stdout))
                {
                    var export = json.RootElement.GetProperty("exports")[0];
                    Assert.True(export.GetProperty("can_multi_conn").GetBoolean(), info.Stdout);
                    Assert.True(export.GetProperty("can_flush").GetBoolean(), info.Stdout);
                    Assert.Equal(1L << 30, export.GetProperty("export-size").GetInt64());
                }

                await RealClientTests.QemuIo(tcp, "write -P 0x6a 3M 1M", "flush");
                await RealClientTests.QemuIo(first.Uri("b", "vol0"), "read -P 0x6a 3M 1M");
                var created = await first.CreateVolumeAsync("later", "64M");
                await RealClientTests.QemuIo(first.GatewayUri(created), "write -P 0x7b 0 64k", "read -P 0x7b 0 64k");

                await TestCluster.WaitUntilAsync(async () =>
                {
                    using var volume = await first.GetJsonAsync("a", $"/api/v1/volumes/{created}");
                    return volume.RootElement.GetProperty("attachedClients").GetInt32() == 0;
                }, TimeSpan.FromSeconds(15), "the gateway did not let go of the volume its client left");
                var delete = await first.CliAsync("volume", "delete", created, "--yes");
                Assert.True(delete.ExitCode == 0, delete.Describe());
                await TestCluster.WaitUntilAsync(async () => await GatewayHarness.VolumeAsync(first, created) is null,
                    TimeSpan.FromSeconds(15), "the gateway still exports the deleted volume");
                await first.ShutdownAsync();
            }

            await using var second = await TestCluster.StartAsync(directory);
            Assert.Equal(unix, second.GatewayUri("vol0"));
            Assert.Equal(tcp, second.GatewayTcpUri("vol0"));
            await RealClientTests.QemuIo(unix, "read -P 0x6a 3M 1M", "read -P 0 0 3M");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}

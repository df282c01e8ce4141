using System.Text.Json;
using Replicator.IntegrationTests.Harness;
using Replicator.IntegrationTests.SingleNode;

namespace Replicator.IntegrationTests.Gateway;

/// <summary>The gateway as <c>cluster up</c> runs it: listed in cluster.json, same endpoints after a restart, real clients through it.</summary>
[Collection(IntegrationCollection.Name)]
public sealed class GatewayClusterTests
{
    [Fact]
    public async Task Cluster_up_serves_every_volume_through_its_gateway_and_keeps_its_endpoints_across_a_restart()
    {
        var directory = Directory.CreateTempSubdirectory("replicator-gateway-").FullName;
        try
        {
            string unix, tcp;
            await using (var first = await TestCluster.StartAsync(directory))
            {
                unix = first.GatewayUri("vol0");
                tcp = first.GatewayTcpUri("vol0");
                Assert.StartsWith("nbd://127.0.0.1:", tcp, StringComparison.Ordinal);
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
                await first.ShutdownAsync();
            }

            await using var second = await TestCluster.StartAsync(directory);
            Assert.Equal(unix, second.GatewayUri("vol0"));
            Assert.Equal(tcp, second.GatewayTcpUri("vol0"));
            await RealClientTests.QemuIo(unix, "read -P 0x6a 3M 1M", "read -P 0 0 3M");
            await RealClientTests.QemuIo(second.GatewayTcpUri("later"), "read -P 0x7b 0 64k");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}

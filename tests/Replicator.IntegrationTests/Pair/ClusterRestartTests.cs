using Replicator.IntegrationTests.Harness;
using Replicator.IntegrationTests.SingleNode;

namespace Replicator.IntegrationTests.Pair;

/// <summary><c>cluster up</c> run again on the same directory brings back the same volumes, data and endpoints.</summary>
[Collection(IntegrationCollection.Name)]
public sealed class ClusterRestartTests
{
    [Fact]
    public async Task Running_cluster_up_again_on_the_same_directory_keeps_volumes_data_and_ports()
    {
        var directory = Directory.CreateTempSubdirectory("replicator-restart-").FullName;
        try
        {
            string uriA;
            await using (var first = await TestCluster.StartAsync(directory))
            {
                uriA = first.TlsUri("a", "vol0");
                await RealClientTests.QemuIo(uriA, "write -P 0x3d 5M 2M");
                await first.CreateVolumeAsync("extra", "64M");
                await RealClientTests.QemuIo(first.Uri("b", "extra"), "write -P 0x4e 0 1M");
                await first.ShutdownAsync();
            }

            await using var second = await TestCluster.StartAsync(directory);
            Assert.Equal(uriA, second.TlsUri("a", "vol0"));
            await second.WaitInSyncAsync("vol0");
            await RealClientTests.QemuIo(second.Uri("b", "vol0"), "read -P 0x3d 5M 2M", "read -P 0 0 5M");
            await RealClientTests.QemuIo(second.Uri("a", "extra"), "read -P 0x4e 0 1M");
            var a = await second.VolumeAsync("a", "vol0");
            Assert.Equal(0, a.ResyncSentBytes);
            Assert.Equal(0, await second.VerifyAsync("vol0"));
        }
        finally
        {
            if (Environment.GetEnvironmentVariable("REPLICATOR_KEEP_TEST_DIRS") is null)
            {
                Directory.Delete(directory, recursive: true);
            }
        }
    }
}

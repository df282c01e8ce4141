using Replicator.IntegrationTests.Harness;
using Replicator.IntegrationTests.SingleNode;

namespace Replicator.IntegrationTests.Security;

/// <summary>
/// NBD over TLS as <c>cluster up</c> sets it up: the TCP exports of the nodes and the gateway require TLS and a client
/// certificate of the cluster's authority; the real clients attach with the directory cluster.json names; a client in
/// clear, or with another authority's certificate, gets nothing. And the files and sockets have the documented modes.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class NbdTlsClusterTests(ClusterFixture fixture) : IClassFixture<ClusterFixture>
{
    private TestCluster Cluster => fixture.Cluster;

    [Fact]
    public async Task Cluster_up_names_its_client_certificates_and_serves_tcp_as_nbds()
    {
        Assert.Equal(Path.Combine(Cluster.Directory, "tls", "client"), Cluster.ClientCertificates);
        foreach (var file in new[] { "ca-cert.pem", "client-cert.pem", "client-key.pem" })
        {
            Assert.True(File.Exists(Path.Combine(Cluster.ClientCertificates, file)), file);
        }

        var shown = await ReplicatorProcess.RunAsync(["cert", "show", Cluster.ClientCertificates]);
        Assert.True(shown.ExitCode == 0, shown.Describe());
        Assert.Contains("client", shown.Stdout, StringComparison.Ordinal);
        Assert.StartsWith("nbds://127.0.0.1:", Cluster.Nbd("a"), StringComparison.Ordinal);
        Assert.StartsWith("nbds://127.0.0.1:", Cluster.Gateway.GetProperty("nbd").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Nbdinfo_with_the_cluster_client_certificates_sees_the_export_of_a_node_and_of_the_gateway()
    {
        foreach (var uri in new[] { Cluster.TlsUri("a", "vol0"), Cluster.TlsUri("b", "vol0"), Cluster.GatewayTcpUri("vol0") })
        {
            var info = await ExternalTool.RunCheckedAsync("nbdinfo", ["--json", uri]);
            Assert.Contains("\"TLS\": true", info.Stdout, StringComparison.Ordinal);
            Assert.Contains($"\"export-size\": {1L << 30}", info.Stdout, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Qemu_io_with_tls_creds_writes_through_the_gateway_and_reads_back_through_both_nodes()
    {
        var volume = await fixture.NewVolumeAsync("64M");
        await Cluster.WaitInSyncAsync(volume);

        await RealClientTests.QemuIo(Cluster.GatewayTcpUri(volume), "write -P 0x3c 1M 256k", "flush");

        await RealClientTests.QemuIo(Cluster.TlsUri("a", volume), "read -P 0x3c 1M 256k");
        await RealClientTests.QemuIo(Cluster.TlsUri("b", volume), "read -P 0x3c 1M 256k", "write -P 0x3d 2M 64k");
        await RealClientTests.QemuIo(Cluster.GatewayTcpUri(volume), "read -P 0x3d 2M 64k");
    }

    [Fact]
    public async Task A_plain_tcp_client_is_refused_by_the_nodes_and_the_gateway()
    {
        foreach (var tls in new[] { Cluster.Nbd("a"), Cluster.Nbd("b"), Cluster.Gateway.GetProperty("nbd").GetString()! })
        {
            var plain = "nbd://" + tls["nbds://".Length..] + "/vol0";

            var result = await ExternalTool.RunAsync("nbdinfo", [plain]);

            Assert.True(result.ExitCode != 0, result.Describe());
            Assert.Contains("without TLS", result.Stdout, StringComparison.Ordinal);
            Assert.Contains("nbd_opt_go: server replied with error", result.Stderr, StringComparison.Ordinal);
        }

        await WaitForLogAsync(NodeLog("a"), "option GO refused with ERR_TLS_REQD");
    }

    [Fact]
    public async Task A_client_certificate_of_another_authority_is_refused_and_the_node_says_why()
    {
        var stranger = Directory.CreateTempSubdirectory("replicator-stranger-").FullName;
        try
        {
            var ca = await ReplicatorProcess.RunAsync(["cert", "ca", "--out", Path.Combine(stranger, "ca")]);
            Assert.True(ca.ExitCode == 0, ca.Describe());
            var client = Path.Combine(stranger, "client");
            var issued = await ReplicatorProcess.RunAsync(["cert", "issue", "client", "--ca", Path.Combine(stranger, "ca"), "--name", "intruder", "--out", client]);
            Assert.True(issued.ExitCode == 0, issued.Describe());

            // The stranger trusts the cluster's authority, so it checks the node's certificate and goes on to show its own:
            // the node, not the client, must be the one that refuses.
            File.Copy(Path.Combine(Cluster.ClientCertificates, "ca-cert.pem"), Path.Combine(client, "ca-cert.pem"), overwrite: true);
            var uri = Cluster.TlsUri("a", "vol0").Replace(Cluster.ClientCertificates, client, StringComparison.Ordinal);

            var result = await ExternalTool.RunAsync("nbdinfo", [uri]);

            Assert.True(result.ExitCode != 0, result.Describe());
            await WaitForLogAsync(NodeLog("a"), "NBD client refused at the TLS handshake: certificate 'CN=intruder");
            Assert.Contains("is not issued by this cluster's authority", await File.ReadAllTextAsync(NodeLog("a")), StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(stranger, recursive: true);
        }
    }

    [Fact]
    public void Sockets_are_0660_and_every_file_of_a_node_but_its_certificates_0600_in_directories_0700()
    {
        const UnixFileMode socket = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite;
        const UnixFileMode file = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        const UnixFileMode directory = file | UnixFileMode.UserExecute;

        Assert.Equal(socket, File.GetUnixFileMode(Cluster.GatewaySocket));
        foreach (var node in new[] { "a", "b" })
        {
            var root = Cluster.DataDir(node);
            Assert.Equal(socket, File.GetUnixFileMode(Path.Combine(root, "nbd.sock")));
            Assert.Equal(directory, File.GetUnixFileMode(root));
            // Certificates are public (docs/security.md), and live in a 0700 directory; everything else is the node's alone.
            foreach (var entry in Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories)
                .Where(e => Path.GetFileName(e) != "nbd.sock" && !e.EndsWith("-cert.pem", StringComparison.Ordinal)))
            {
                var expected = Directory.Exists(entry) ? directory : file;
                Assert.True(File.GetUnixFileMode(entry) == expected, $"{entry} is {Convert.ToString((int)File.GetUnixFileMode(entry), 8)}, not {Convert.ToString((int)expected, 8)}");
            }
        }

        foreach (var entry in Directory.EnumerateFileSystemEntries(Path.Combine(Cluster.Directory, "tls"), "*", SearchOption.AllDirectories))
        {
            if (Directory.Exists(entry))
            {
                Assert.True(File.GetUnixFileMode(entry) == directory, $"{entry} is {Convert.ToString((int)File.GetUnixFileMode(entry), 8)}");
            }
            else if (entry.EndsWith("-key.pem", StringComparison.Ordinal))
            {
                Assert.True(File.GetUnixFileMode(entry) == file, $"{entry} is {Convert.ToString((int)File.GetUnixFileMode(entry), 8)}");
            }
        }
    }

    private string NodeLog(string node) => Path.Combine(Cluster.DataDir(node), "node.log");

    private static async Task WaitForLogAsync(string path, string text) =>
        await TestCluster.WaitUntilAsync(async () => (await File.ReadAllTextAsync(path)).Contains(text, StringComparison.Ordinal),
            TimeSpan.FromSeconds(15), $"{path} does not say '{text}'");
}

using Replicator.IntegrationTests.Harness;

namespace Replicator.IntegrationTests.Security;

/// <summary>What a node or a witness refuses to start with, and the message that says why.</summary>
[Collection(IntegrationCollection.Name)]
public sealed class StartupRefusalTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("replicator-refusal-").FullName;

    [Fact]
    public async Task A_peer_link_left_unencrypted_on_a_network_address_is_refused_at_start()
    {
        var result = await ReplicatorProcess.RunAsync(["node", "run", "--dir", _directory, "--name", "a",
            "--peer-name", "b", "--peer-id", Guid.NewGuid().ToString(), "--peer-listen", "0.0.0.0:0", "--peer-encryption", "off"]);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("peer.encryption is 'off' but the peer link uses 0.0.0.0:0, which is not a loopback address", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("peer.dedicatedLink", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_paired_node_without_its_certificate_is_refused_at_start()
    {
        var result = await ReplicatorProcess.RunAsync(["node", "run", "--dir", _directory, "--name", "a",
            "--peer-name", "b", "--peer-id", Guid.NewGuid().ToString(), "--peer-listen", "127.0.0.1:0"]);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("node a cannot authenticate to peer b", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("tls/ca-cert.pem is missing", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("replicator cert issue", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_witness_without_its_certificate_does_not_listen()
    {
        var result = await ReplicatorProcess.RunAsync(["witness", "--dir", _directory, "--listen", "0.0.0.0:0"]);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("the witness listens only with TLS, and cannot on 0.0.0.0:0", result.Stderr, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}

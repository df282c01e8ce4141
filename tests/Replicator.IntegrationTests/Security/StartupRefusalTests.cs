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

    [Fact]
    public async Task An_nbd_export_in_clear_on_a_network_address_is_refused_at_start()
    {
        var result = await ReplicatorProcess.RunAsync(["node", "run", "--dir", _directory, "--nbd-listen", "0.0.0.0:0", "--nbd-tls", "off"]);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("nbd.tls is 'off' but the NBD server would listen on 0.0.0.0:0, which is not a loopback address", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_tcp_nbd_export_without_a_certificate_to_serve_tls_with_is_refused_at_start()
    {
        var result = await ReplicatorProcess.RunAsync(["node", "run", "--dir", _directory, "--nbd-listen", "127.0.0.1:0"]);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("the NBD server would listen on 127.0.0.1:0 and requires TLS there", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("\"tls\": \"off\"", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_gateway_that_would_reach_a_node_over_tcp_without_a_certificate_is_refused_at_start()
    {
        var token = Path.Combine(_directory, "token");
        await File.WriteAllTextAsync(token, "secret-token-secret-token");
        File.SetUnixFileMode(token, UnixFileMode.UserRead | UnixFileMode.UserWrite);

        var result = await ReplicatorProcess.RunAsync(["gateway", "--socket", Path.Combine(_directory, "gw.sock"), "--token-file", token,
            "--node", "a=nbds://127.0.0.1:1,admin=http://127.0.0.1:1", "--node", "b=nbd+unix:///?socket=/nonexistent,admin=http://127.0.0.1:2"]);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("the gateway reaches node a at nbds://127.0.0.1:1/, over TCP, which it does with TLS only, and it has no certificate", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_admin_token_other_users_may_read_is_refused_as_ssh_refuses_such_a_key()
    {
        var token = Path.Combine(_directory, "admin.token");
        await File.WriteAllTextAsync(token, "0123456789abcdef0123456789abcdef\n");
        File.SetUnixFileMode(token, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        var node = await ReplicatorProcess.RunAsync(["node", "run", "--dir", _directory, "--nbd-listen", ""]);
        var cli = await ReplicatorProcess.RunAsync(["status", "--admin", "http://127.0.0.1:1", "--token-file", token]);

        Assert.Equal(2, node.ExitCode);
        Assert.Contains($"permissions 0644 for '{token}' are too open", node.Stderr, StringComparison.Ordinal);
        Assert.Contains($"chmod 600 {token}", node.Stderr, StringComparison.Ordinal);
        Assert.NotEqual(0, cli.ExitCode);
        Assert.Contains("are too open", cli.Stderr, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}

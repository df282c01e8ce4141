using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using Replicator.IntegrationTests.Harness;
using Xunit.Abstractions;
using Replicator.IntegrationTests.SingleNode;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.IntegrationTests.Security;

/// <summary>
/// The peer port of a running pair (<c>cluster up</c>, node b listens, node a dials) against strangers,
/// a node of another authority, and a node whose certificate is renewed and then revoked.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class PeerLinkSecurityTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_bare_connect_random_bytes_and_a_forged_hello_never_pair_and_leave_the_live_link_and_its_connect_count_alone()
    {
        await using var cluster = await TestCluster.StartAsync();
        var before = await LinkAsync(cluster);
        var peerPort = PeerAddressOf(cluster, "b");
        using var configOfA = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(cluster.DataDir("a"), "node.json")));
        var nodeA = configOfA.RootElement;

        using var bare = await ClusterPki.ConnectAsync(peerPort);
        using var random = await ClusterPki.ConnectAsync(peerPort);
        await random.SendAsync(RandomNumberGenerator.GetBytes(64 << 10));
        using var forged = await ClusterPki.ConnectAsync(peerPort);
        await forged.SendAsync(ForgedHello(nodeA));
        using var noCertificate = await ClusterPki.ConnectAsync(peerPort);
        var tlsWithoutCertificate = HelloOverTlsWithoutCertificateAsync(noCertificate, nodeA);

        // Each is refused once its handshake fails (the bare connect by the handshake timeout, 5 s).
        await TestCluster.WaitUntilAsync(async () => (await cluster.PeerAsync("b")).GetProperty("refusedConnections").GetInt64() >= 4,
            Wait, "node b did not refuse the four strangers", () => Task.FromResult(cluster.LogTails()));
        await Assert.ThrowsAnyAsync<Exception>(() => tlsWithoutCertificate.WaitAsync(Wait));

        var after = await LinkAsync(cluster);
        Assert.Equal(before, after);
        var log = await File.ReadAllTextAsync(Path.Combine(cluster.DataDir("b"), "node.log"));
        Assert.Contains("did not complete a TLS handshake within 5 s", log, StringComparison.Ordinal);
        Assert.Contains("it presented no certificate", log, StringComparison.Ordinal);
        output.WriteLine((await cluster.PeerAsync("b")).GetProperty("lastRefusedConnection").GetString());

        // The pair still replicates, and never paired with anyone else.
        await RealClientTests.QemuIo(cluster.Uri("a", "vol0"), "write -P 0x3c 0 1M");
        await RealClientTests.QemuIo(cluster.Uri("b", "vol0"), "read -P 0x3c 0 1M");
        Assert.Equal(0, await cluster.VerifyAsync("vol0"));
    }

    [Fact]
    public async Task A_node_whose_certificate_comes_from_another_authority_is_refused_with_the_reason_in_the_log()
    {
        await using var cluster = await TestCluster.StartAsync();
        var connectsOfA = (await cluster.PeerAsync("a")).GetProperty("connects").GetInt32();
        await cluster.StopAsync("b");
        await TestCluster.WaitUntilAsync(async () => !(await cluster.PeerAsync("a")).GetProperty("connected").GetBoolean(), Wait, "a did not notice b stopped");

        // b comes back with the same name, id and cluster id, but a certificate of an authority made elsewhere.
        var stranger = Path.Combine(cluster.Directory, "stranger-ca");
        await CliAsync("cert", "ca", "--out", stranger, "--cluster-id", cluster.Manifest.GetProperty("clusterId").GetString()!);
        var nodeB = await NodeIdAsync(cluster, "b");
        Directory.Delete(cluster.NodeTlsDirectory("b"), recursive: true);
        await CliAsync("cert", "issue", "node", "--ca", stranger, "--name", "b", "--id", nodeB.ToString(), "--out", cluster.NodeTlsDirectory("b"));
        var logOfA = Path.Combine(cluster.DataDir("a"), "node.log");
        var logged = new FileInfo(logOfA).Length;
        await cluster.RestartAsync("b");

        await TestCluster.WaitUntilAsync(async () => ReadFrom(logOfA, logged).Contains("is not issued by this cluster's authority", StringComparison.Ordinal),
            Wait, "a did not log why it refuses b", () => Task.FromResult(cluster.LogTails()));
        var line = ReadFrom(logOfA, logged).Split('\n').First(l => l.Contains("is not issued by this cluster's authority", StringComparison.Ordinal));
        output.WriteLine(line);
        Assert.Contains("refused", line, StringComparison.Ordinal);
        Assert.Contains("CN=b", line, StringComparison.Ordinal);
        Assert.False((await cluster.PeerAsync("a")).GetProperty("connected").GetBoolean());
        Assert.Equal(connectsOfA, (await cluster.PeerAsync("a")).GetProperty("connects").GetInt32());
        Assert.Equal("disconnected", (await cluster.VolumeAsync("a", "vol0")).Connection);
    }

    [Fact]
    public async Task A_renewed_certificate_keeps_the_link_serves_the_next_connection_and_revoking_it_cuts_the_node_off()
    {
        await using var cluster = await TestCluster.StartAsync(null, "--no-witness");
        var old = await ClusterPki.SerialAsync(cluster.NodeTlsDirectory("b"));
        Assert.Equal(old, (await cluster.PeerAsync("a")).GetProperty("peerCertificateSerial").GetString());
        var before = await LinkAsync(cluster);

        await CliAsync("cert", "renew", "--ca", cluster.AuthorityDirectory(), "--dir", cluster.NodeTlsDirectory("b"));
        var renewed = await ClusterPki.SerialAsync(cluster.NodeTlsDirectory("b"));
        Assert.NotEqual(old, renewed);
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.Equal(before, await LinkAsync(cluster));

        // The next connection is made with the new certificate; the old one can then go.
        await cluster.StopAsync("b");
        await cluster.RestartAsync("b");
        await cluster.WaitInSyncAsync("vol0");
        Assert.Equal(renewed, (await cluster.PeerAsync("a")).GetProperty("peerCertificateSerial").GetString());
        await CliAsync("cert", "revoke", "--list", cluster.RevocationList(), "--serial", old, "--reason", "rotated");
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.True((await cluster.PeerAsync("a")).GetProperty("connected").GetBoolean(), "revoking the old certificate left the link made with the new one alone");
        var connects = (await cluster.PeerAsync("a")).GetProperty("connects").GetInt32();

        // Revoking node b itself (its id) cuts the live link and refuses every new one.
        await CliAsync("cert", "revoke", "--list", cluster.RevocationList(), "--id", (await NodeIdAsync(cluster, "b")).ToString(), "--reason", "decommissioned");
        await TestCluster.WaitUntilAsync(async () => !(await cluster.PeerAsync("a")).GetProperty("connected").GetBoolean(), Wait, "a kept its link to the revoked b");
        await TestCluster.WaitUntilAsync(async () => (await cluster.PeerAsync("a")).GetProperty("refusedConnections").GetInt64() >= 2, Wait,
            "a did not refuse b's new connections", () => Task.FromResult(cluster.LogTails()));
        var log = await File.ReadAllTextAsync(Path.Combine(cluster.DataDir("a"), "node.log"));
        Assert.Contains("it is revoked (id", log, StringComparison.Ordinal);
        Assert.Contains("decommissioned", log, StringComparison.Ordinal);
        Assert.Equal(connects, (await cluster.PeerAsync("a")).GetProperty("connects").GetInt32());
        Assert.Equal("disconnected", (await cluster.VolumeAsync("a", "vol0")).Connection);
    }

    /// <summary>What must not change: both nodes connected, since when, and how often each has connected.</summary>
    private static async Task<(bool, bool, string?, int, int)> LinkAsync(TestCluster cluster)
    {
        var a = await cluster.PeerAsync("a");
        var b = await cluster.PeerAsync("b");
        return (a.GetProperty("connected").GetBoolean(), b.GetProperty("connected").GetBoolean(), b.GetProperty("connectedSince").GetString(),
            a.GetProperty("connects").GetInt32(), b.GetProperty("connects").GetInt32());
    }

    private static string PeerAddressOf(TestCluster cluster, string node) =>
        cluster.Manifest.GetProperty("nodes").EnumerateArray().First(n => n.GetProperty("name").GetString() == node).GetProperty("peer").GetString()!;

    /// <summary>The node's id, from its node.json (the node need not be running).</summary>
    private static async Task<Guid> NodeIdAsync(TestCluster cluster, string node)
    {
        using var config = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(cluster.DataDir(node), "node.json")));
        return config.RootElement.GetProperty("nodeId").GetGuid();
    }

    /// <summary>Node a's Hello, as a frame in clear: the right cluster id, node id and name, and no certificate.</summary>
    private static byte[] ForgedHello(JsonElement nodeA)
    {
        var hello = PeerHandshake.CreateHello(new PeerIdentity(nodeA.GetProperty("clusterId").GetGuid(), nodeA.GetProperty("nodeId").GetGuid(), "a"), []);
        var writer = new System.Buffers.ArrayBufferWriter<byte>();
        PeerFrameWriter.WriteFrame(writer, new Envelope { Hello = hello }, [], PeerFrameLimits.Default);
        return writer.WrittenSpan.ToArray();
    }

    /// <summary>A TLS client without a certificate that sends node a's Hello inside TLS and reads; throws or returns nothing.</summary>
    private static async Task HelloOverTlsWithoutCertificateAsync(Socket socket, JsonElement nodeA)
    {
        await using var tls = new SslStream(new NetworkStream(socket), false, (_, _, _, _) => true);
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "b" });
        await tls.WriteAsync(ForgedHello(nodeA));
        var read = await tls.ReadAsync(new byte[64]);
        throw new IOException($"node b answered a client without a certificate with {read} bytes");
    }

    private static string ReadFrom(string path, long offset)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        stream.Seek(offset, SeekOrigin.Begin);
        return new StreamReader(stream).ReadToEnd();
    }

    private static async Task CliAsync(params string[] arguments)
    {
        var result = await ReplicatorProcess.RunAsync(arguments);
        Assert.True(result.ExitCode == 0, result.Describe());
    }
}

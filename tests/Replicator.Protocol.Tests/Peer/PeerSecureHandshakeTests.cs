using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;
using Replicator.Protocol.Security;
using Replicator.Protocol.Tests.Security;

namespace Replicator.Protocol.Tests.Peer;

/// <summary>
/// The peer link's setup over real loopback sockets: mutual TLS first, the Hello exchange inside it,
/// then the link encrypted or handed back to the bare socket; and each way a stranger is refused.
/// </summary>
public sealed class PeerSecureHandshakeTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);
    private readonly TestPki _pki = new(PeerFrameSamples.ClusterId);
    private readonly TlsDirectory _credentialsA;
    private readonly TlsDirectory _credentialsB;

    public PeerSecureHandshakeTests()
    {
        using var a = _pki.Issue(_pki.Identity(IdentityRole.Node, "node-a", PeerFrameSamples.NodeA));
        using var b = _pki.Issue(_pki.Identity(IdentityRole.Node, "node-b", PeerFrameSamples.NodeB));
        _credentialsA = _pki.Write("a", a);
        _credentialsB = _pki.Write("b", b);
    }

    [Theory]
    [InlineData(false, false, false)]
    [InlineData(true, false, true)]
    [InlineData(false, true, true)]
    [InlineData(true, true, true)]
    public async Task Both_nodes_prove_who_they_are_and_the_link_is_encrypted_when_either_asks(bool encryptA, bool encryptB, bool encrypted)
    {
        var (a, b) = await PairAsync(SecurityOfA(encryptA), SecurityOfB(encryptB));
        await using var transportA = a.Transport;
        await using var transportB = b.Transport;

        Assert.Equal((encrypted, encrypted), (a.Encrypted, b.Encrypted));
        Assert.IsType(encrypted ? typeof(PeerTlsTransport) : typeof(PeerSocketTransport), a.Transport);
        Assert.IsType(encrypted ? typeof(PeerTlsTransport) : typeof(PeerSocketTransport), b.Transport);
        Assert.Equal(new ClusterIdentity(IdentityRole.Node, "node-b", PeerFrameSamples.NodeB, _pki.ClusterId), a.Certificate);
        Assert.Equal(new ClusterIdentity(IdentityRole.Node, "node-a", PeerFrameSamples.NodeA, _pki.ClusterId), b.Certificate);
        Assert.Equal("node-b", a.Handshake.Peer.NodeName);
        await ExchangeRequestsBothWaysAsync(a, b);
    }

    [Fact]
    public async Task Handing_the_socket_back_from_tls_loses_no_byte_when_both_sides_send_at_once_many_times()
    {
        for (var round = 0; round < 10; round++)
        {
            var (a, b) = await PairAsync(SecurityOfA(false), SecurityOfB(false));
            await using var transportA = a.Transport;
            await using var transportB = b.Transport;
            await ExchangeRequestsBothWaysAsync(a, b);
        }
    }

    [Fact]
    public async Task A_node_whose_certificate_comes_from_another_authority_is_refused_and_the_refusing_side_says_why()
    {
        using var stranger = new TestPki(_pki.ClusterId);
        using var forged = stranger.Issue(stranger.Identity(IdentityRole.Node, "node-a", PeerFrameSamples.NodeA));
        var forgedA = SecurityOfA(false) with { Credentials = stranger.Write("a", forged) };

        var (errorA, errorB) = await FailuresAsync(forgedA, SecurityOfB(false));

        Assert.Equal(PeerHandshakeFailure.NotAuthenticated, errorB.Failure);
        Assert.Contains("This node refused a connection from", errorB.Message, StringComparison.Ordinal);
        Assert.Contains("is not issued by this cluster's authority", errorB.Message, StringComparison.Ordinal);
        Assert.Equal(PeerHandshakeFailure.NotAuthenticated, errorA.Failure);
        Assert.Contains("it most likely refused this node's certificate", errorA.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_revoked_node_is_refused()
    {
        var list = Path.Combine(_pki.Directory, "revoked.json");
        RevocationList.Add(list, new RevocationEntry(null, PeerFrameSamples.NodeA, "node-a", "decommissioned", DateTimeOffset.UtcNow));
        var securityOfB = SecurityOfB(false) with { Trust = new ClusterTrust(_pki.ClusterId, () => _credentialsB.Load().Authorities, new RevocationList(list)) };

        var (_, errorB) = await FailuresAsync(SecurityOfA(false), securityOfB);

        Assert.Equal(PeerHandshakeFailure.NotAuthenticated, errorB.Failure);
        Assert.Contains("it is revoked", errorB.Message, StringComparison.Ordinal);
        Assert.Contains("decommissioned", errorB.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_node_other_than_the_configured_peer_is_refused_though_its_certificate_is_the_cluster_s()
    {
        using var c = _pki.Issue(_pki.Identity(IdentityRole.Node, "node-c", Guid.NewGuid()));
        var securityOfC = SecurityOfA(false) with { Credentials = _pki.Write("c", c) };

        var (_, errorB) = await FailuresAsync(securityOfC, SecurityOfB(false));

        Assert.Contains("names the node 'node-c'", errorB.Message, StringComparison.Ordinal);
        Assert.Contains("but the configured peer is the node 'node-a'", errorB.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_hello_naming_another_node_than_the_certificate_is_refused_by_both()
    {
        var hello = PeerHandshake.CreateHello(new PeerIdentity(PeerFrameSamples.ClusterId, Guid.NewGuid(), "node-a"), []);

        var (errorA, errorB) = await FailuresAsync(SecurityOfA(false), SecurityOfB(false), helloOfA: () => hello);

        Assert.Contains("identity mismatch", errorB.Message, StringComparison.Ordinal);
        Assert.Equal(PeerHandshakeFailure.RefusedByPeer, errorA.Failure);
    }

    [Fact]
    public async Task A_client_without_a_certificate_is_refused_before_its_hello_is_read()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var endPoint = (IPEndPoint)listener.LocalEndpoint;
        using var client = new TcpClient();
        await client.ConnectAsync(endPoint);
        var accepted = await listener.AcceptSocketAsync();
        var refusing = RunAsync(accepted, dialed: false, SecurityOfB(false), HelloOf("node-b", PeerFrameSamples.NodeB));
        await using var tls = new SslStream(client.GetStream(), false, (_, _, _, _) => true);

        var clientSide = Task.Run(async () =>
        {
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "node-b" });
            await tls.WriteAsync(PeerFrameSamples.Encode(new Envelope { Hello = HelloOf("node-a", PeerFrameSamples.NodeA)() }, []));
            await tls.FlushAsync();
            return await tls.ReadAsync(new byte[16]);
        });

        var error = await Assert.ThrowsAsync<PeerHandshakeException>(() => refusing.WaitAsync(TestTimeouts.Wait));
        Assert.Equal(PeerHandshakeFailure.NotAuthenticated, error.Failure);
        Assert.Contains("it presented no certificate", error.Message, StringComparison.Ordinal);
        try
        {
            Assert.Equal(0, await clientSide.WaitAsync(TestTimeouts.Wait));
        }
        catch (Exception e) when (e is IOException or System.Security.Authentication.AuthenticationException)
        {
            // Either way the stranger's session ended without a byte of the node's Hello.
        }
    }

    [Fact]
    public async Task A_forged_hello_sent_in_clear_is_not_a_tls_handshake()
    {
        var (error, _) = await StrangerAsync(PeerFrameSamples.Encode(new Envelope { Hello = HelloOf("node-a", PeerFrameSamples.NodeA)() }, []));

        Assert.Equal(PeerHandshakeFailure.NotAuthenticated, error.Failure);
        Assert.Contains("failed before any certificate was accepted", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Random_bytes_are_refused()
    {
        var (error, _) = await StrangerAsync(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4096));

        Assert.Equal(PeerHandshakeFailure.NotAuthenticated, error.Failure);
    }

    [Fact]
    public async Task A_connection_reset_in_the_middle_of_the_tls_handshake_is_a_handshake_failure_not_a_crash()
    {
        await using var listener = PeerListener.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var accepting = listener.AcceptAsync().AsTask();
        var stranger = await PeerTransport.ConnectAsync(listener.LocalEndPoint, Timeout);
        var accepted = await accepting.WaitAsync(TestTimeouts.Wait);
        var refusing = RunAsync(accepted, dialed: false, SecurityOfB(false), HelloOf("node-b", PeerFrameSamples.NodeB));

        // The start of a TLS record (a handshake record of 512 bytes), then a reset (SO_LINGER 0).
        await stranger.SendAsync(new byte[] { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01 });
        stranger.LingerState = new LingerOption(true, 0);
        stranger.Close();

        var error = await Assert.ThrowsAsync<PeerHandshakeException>(() => refusing.WaitAsync(TestTimeouts.Wait));
        Assert.Equal(PeerHandshakeFailure.NotAuthenticated, error.Failure);
    }

    [Fact]
    public async Task A_connection_that_sends_nothing_times_out()
    {
        var (error, elapsed) = await StrangerAsync([], TimeSpan.FromMilliseconds(500));

        Assert.Equal(PeerHandshakeFailure.TimedOut, error.Failure);
        Assert.Contains("did not complete a TLS handshake within 0.5 s", error.Message, StringComparison.Ordinal);
        Assert.True(elapsed < TestTimeouts.Wait);
    }

    public void Dispose() => _pki.Dispose();

    private PeerLinkSecurity SecurityOfA(bool encrypt) =>
        new(_credentialsA, new ClusterTrust(_pki.ClusterId, () => _credentialsA.Load().Authorities, RevocationList.None), "node-b", PeerFrameSamples.NodeB, encrypt);

    private PeerLinkSecurity SecurityOfB(bool encrypt) =>
        new(_credentialsB, new ClusterTrust(_pki.ClusterId, () => _credentialsB.Load().Authorities, RevocationList.None), "node-a", PeerFrameSamples.NodeA, encrypt);

    private static Func<Hello> HelloOf(string name, Guid id) => () => PeerHandshake.CreateHello(new PeerIdentity(PeerFrameSamples.ClusterId, id, name), []);

    private static Task<AuthenticatedPeer> RunAsync(Socket socket, bool dialed, PeerLinkSecurity security, Func<Hello> hello, TimeSpan? timeout = null) =>
        PeerSecureHandshake.RunAsync(socket, dialed, security, hello, timeout ?? Timeout, new ListLogger());

    /// <summary>Node A dials node B; both run the secure handshake at once.</summary>
    private static async Task<(Task<AuthenticatedPeer> A, Task<AuthenticatedPeer> B)> StartAsync(PeerLinkSecurity a, PeerLinkSecurity b, Func<Hello>? helloOfA = null)
    {
        await using var listener = PeerListener.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var accepting = listener.AcceptAsync().AsTask();
        var dialed = await PeerTransport.ConnectAsync(listener.LocalEndPoint, Timeout);
        var accepted = await accepting.WaitAsync(TestTimeouts.Wait);
        return (RunAsync(dialed, dialed: true, a, helloOfA ?? HelloOf("node-a", PeerFrameSamples.NodeA)),
                RunAsync(accepted, dialed: false, b, HelloOf("node-b", PeerFrameSamples.NodeB)));
    }

    private static async Task<(AuthenticatedPeer A, AuthenticatedPeer B)> PairAsync(PeerLinkSecurity a, PeerLinkSecurity b)
    {
        var (runA, runB) = await StartAsync(a, b);
        return (await runA.WaitAsync(TestTimeouts.Wait), await runB.WaitAsync(TestTimeouts.Wait));
    }

    private static async Task<(PeerHandshakeException A, PeerHandshakeException B)> FailuresAsync(PeerLinkSecurity a, PeerLinkSecurity b, Func<Hello>? helloOfA = null)
    {
        var (runA, runB) = await StartAsync(a, b, helloOfA);
        var errorA = await Assert.ThrowsAsync<PeerHandshakeException>(() => runA.WaitAsync(TestTimeouts.Wait));
        var errorB = await Assert.ThrowsAsync<PeerHandshakeException>(() => runB.WaitAsync(TestTimeouts.Wait));
        return (errorA, errorB);
    }

    /// <summary>A stranger connects to node B's peer port and sends <paramref name="bytes"/>; returns how B's handshake failed, and how long it took.</summary>
    private async Task<(PeerHandshakeException Error, TimeSpan Elapsed)> StrangerAsync(byte[] bytes, TimeSpan? timeout = null)
    {
        await using var listener = PeerListener.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var accepting = listener.AcceptAsync().AsTask();
        using var stranger = await PeerTransport.ConnectAsync(listener.LocalEndPoint, Timeout);
        var accepted = await accepting.WaitAsync(TestTimeouts.Wait);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var refusing = RunAsync(accepted, dialed: false, SecurityOfB(false), HelloOf("node-b", PeerFrameSamples.NodeB), timeout);
        if (bytes.Length > 0)
        {
            await stranger.SendAsync(bytes);
        }

        var error = await Assert.ThrowsAsync<PeerHandshakeException>(() => refusing.WaitAsync(TestTimeouts.Wait));
        return (error, clock.Elapsed);
    }

    /// <summary>Each side sends writes to the other as soon as its connection starts, and reads its answers.</summary>
    private static async Task ExchangeRequestsBothWaysAsync(AuthenticatedPeer a, AuthenticatedPeer b)
    {
        var connectionA = new PeerConnection(a.Transport, DelegateHandler.AlwaysOk(), PeerConnectionOptions.Default, new ListLogger(), "node-b");
        var connectionB = new PeerConnection(b.Transport, DelegateHandler.AlwaysOk(), PeerConnectionOptions.Default, new ListLogger(), "node-a");
        connectionA.Start();
        connectionB.Start();
        var fromA = Enumerable.Range(0, 4).Select(i => connectionA.SendRequestAsync(PeerFrameSamples.Write(1 << 20, (ulong)i << 20), PeerFrameSamples.Blocks(1 << 20, i))).ToList();
        var fromB = Enumerable.Range(0, 4).Select(i => connectionB.SendRequestAsync(PeerFrameSamples.Write(4096, (ulong)i << 12), PeerFrameSamples.Blocks(4096, i))).ToList();
        foreach (var reply in fromA.Concat(fromB))
        {
            using var answered = await reply.WaitAsync(TestTimeouts.Wait);
            Assert.True(answered.IsOk, answered.Message);
        }

        await connectionA.CloseAsync("done").WaitAsync(TestTimeouts.Wait);
        await connectionB.Completion.WaitAsync(TestTimeouts.Wait);
    }
}

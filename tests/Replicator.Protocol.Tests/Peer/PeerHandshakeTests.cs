using System.Diagnostics;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Tests.Peer;

public sealed class PeerHandshakeTests
{
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task Both_sides_learn_who_the_other_is_and_what_volumes_it_has()
    {
        var volumes = PeerFrameSamples.Hello().Hello.Volumes;
        var a = PeerHandshake.CreateHello(new PeerIdentity(PeerFrameSamples.ClusterId, PeerFrameSamples.NodeA, "node-a"), volumes);
        var b = PeerHandshake.CreateHello(new PeerIdentity(PeerFrameSamples.ClusterId, PeerFrameSamples.NodeB, "node-b"), []);

        var (resultA, resultB) = await RunBothAsync(a, b);

        Assert.Equal(new PeerIdentity(PeerFrameSamples.ClusterId, PeerFrameSamples.NodeB, "node-b"), (await resultA).Peer);
        Assert.Equal(new PeerIdentity(PeerFrameSamples.ClusterId, PeerFrameSamples.NodeA, "node-a"), (await resultB).Peer);
        Assert.Equal(volumes, (await resultB).Hello.Volumes);
        Assert.Equal(PeerWire.ProtocolMajor, (await resultB).Hello.ProtocolMajor);
        Assert.Empty((await resultA).Hello.Volumes);
    }

    [Fact]
    public async Task A_peer_of_another_major_version_is_refused_on_both_sides_with_both_versions_named()
    {
        var b = HelloOf(PeerFrameSamples.NodeB, "node-b");
        b.ProtocolMajor = PeerWire.ProtocolMajor + 1;

        var (errorA, errorB) = await FailuresOfAsync(HelloOf(PeerFrameSamples.NodeA, "node-a"), b);

        foreach (var error in new[] { errorA, errorB })
        {
            Assert.Equal(PeerHandshakeFailure.RefusedByThisNode, error.Failure);
            Assert.Contains("protocol version mismatch", error.Message, StringComparison.Ordinal);
            Assert.Contains($"node 'node-b' (node-b-address) speaks peer protocol {PeerWire.ProtocolMajor + 1}.0", errorA.Message, StringComparison.Ordinal);
            Assert.Contains($"speaks peer protocol {PeerWire.ProtocolMajor}.0", error.Message, StringComparison.Ordinal);
            Assert.Contains($"speaks peer protocol {PeerWire.ProtocolMajor + 1}.0", error.Message, StringComparison.Ordinal);
            Assert.Contains("upgrade node 'node-a'", error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_peer_of_another_cluster_is_refused_on_both_sides()
    {
        var otherCluster = Guid.Parse("00000000-0000-4000-8000-0000000000cc");

        var (errorA, errorB) = await FailuresOfAsync(HelloOf(PeerFrameSamples.NodeA, "node-a"), HelloOf(PeerFrameSamples.NodeB, "node-b", otherCluster));

        Assert.Contains("cluster mismatch", errorA.Message, StringComparison.Ordinal);
        Assert.Contains(otherCluster.ToString(), errorA.Message, StringComparison.Ordinal);
        Assert.Contains("cluster mismatch", errorB.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_node_with_our_own_node_id_is_refused()
    {
        var (errorA, errorB) = await FailuresOfAsync(HelloOf(PeerFrameSamples.NodeA, "node-a"), HelloOf(PeerFrameSamples.NodeA, "node-a-copy"));

        Assert.Contains("node id conflict", errorA.Message, StringComparison.Ordinal);
        Assert.Contains("node id conflict", errorB.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task When_only_one_side_refuses_the_other_is_told_the_reason()
    {
        var b = HelloOf(PeerFrameSamples.NodeB, "node-b");
        b.Volumes.Add(new VolumeDescriptor { VolumeId = PeerFrameSamples.Volume0.ToString(), Name = "vol0", AllocationUnit = 3000 });

        var (errorA, errorB) = await FailuresOfAsync(HelloOf(PeerFrameSamples.NodeA, "node-a"), b);

        Assert.Equal(PeerHandshakeFailure.RefusedByThisNode, errorA.Failure);
        Assert.Equal(PeerHandshakeFailure.RefusedByPeer, errorB.Failure);
        Assert.Contains("allocation unit of 3000 bytes", errorA.Message, StringComparison.Ordinal);
        Assert.Contains("allocation unit of 3000 bytes", errorB.Message, StringComparison.Ordinal);
        Assert.StartsWith("Peer node-a-address refused this node", errorB.Message, StringComparison.Ordinal);
    }

    public static TheoryData<string, string> InvalidHelloFields => new()
    {
        { "cluster", "invalid cluster id 'not-a-guid'" },
        { "node", "invalid node id 'not-a-guid'" },
        { "volume", "invalid id 'not-a-guid'" },
    };

    [Theory]
    [MemberData(nameof(InvalidHelloFields))]
    public async Task A_hello_with_an_invalid_id_is_refused_and_the_sender_is_told(string field, string phrase)
    {
        var (a, b) = DuplexPipePair.Create();
        var raw = new RawPeer(b);
        var hello = HelloOf(PeerFrameSamples.NodeB, "node-b");
        switch (field)
        {
            case "cluster":
                hello.ClusterId = "not-a-guid";
                break;
            case "node":
                hello.NodeId = "not-a-guid";
                break;
            default:
                hello.Volumes.Add(new VolumeDescriptor { VolumeId = "not-a-guid", AllocationUnit = 4096 });
                break;
        }

        await raw.SendAsync(new Envelope { Hello = hello });
        var error = await Assert.ThrowsAsync<PeerHandshakeException>(
            () => PeerHandshake.RunAsync(a, HelloOf(PeerFrameSamples.NodeA, "node-a"), "peer", HandshakeTimeout, new ListLogger()).WaitAsync(TestTimeouts.Wait));

        Assert.Equal(PeerHandshakeFailure.RefusedByThisNode, error.Failure);
        Assert.Contains(phrase, error.Message, StringComparison.Ordinal);
        Assert.Equal(Envelope.BodyOneofCase.Hello, (await raw.ReceiveAsync())!.Value.Header.BodyCase);
        Assert.Contains(phrase, (await raw.ReceiveAsync())!.Value.Header.Refused.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_peer_that_never_answers_times_out_clearly()
    {
        var (a, _) = DuplexPipePair.Create();
        var clock = Stopwatch.StartNew();

        var error = await Assert.ThrowsAsync<PeerHandshakeException>(
            () => PeerHandshake.RunAsync(a, HelloOf(PeerFrameSamples.NodeA, "node-a"), "10.0.0.2:7100", TimeSpan.FromMilliseconds(300), new ListLogger()).WaitAsync(TestTimeouts.Wait));

        Assert.Equal(PeerHandshakeFailure.TimedOut, error.Failure);
        Assert.Contains("did not complete the handshake within 0.3 s", error.Message, StringComparison.Ordinal);
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Something_that_is_not_a_peer_is_a_protocol_error()
    {
        var (a, b) = DuplexPipePair.Create();
        await b.Output.WriteAsync("SSH-2.0-OpenSSH_9.2\r\n"u8.ToArray());

        var error = await Assert.ThrowsAsync<PeerHandshakeException>(
            () => PeerHandshake.RunAsync(a, HelloOf(PeerFrameSamples.NodeA, "node-a"), "peer", HandshakeTimeout, new ListLogger()).WaitAsync(TestTimeouts.Wait));

        Assert.Equal(PeerHandshakeFailure.ProtocolError, error.Failure);
        Assert.Contains("not a Replicator peer", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_peer_that_hangs_up_during_the_handshake_is_a_clear_error()
    {
        var (a, b) = DuplexPipePair.Create();
        await new RawPeer(b).SendAsync(new Envelope { Hello = HelloOf(PeerFrameSamples.NodeB, "node-b") });
        await b.Output.CompleteAsync();

        var error = await Assert.ThrowsAsync<PeerHandshakeException>(
            () => PeerHandshake.RunAsync(a, HelloOf(PeerFrameSamples.NodeA, "node-a"), "peer", HandshakeTimeout, new ListLogger()).WaitAsync(TestTimeouts.Wait));

        Assert.Contains("closed the connection during the handshake", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_request_the_peer_sends_right_behind_its_acceptance_is_not_lost()
    {
        var (a, b) = DuplexPipePair.Create();
        var raw = new RawPeer(b);
        var hello = PeerFrameSamples.Encode(new Envelope { Hello = HelloOf(PeerFrameSamples.NodeB, "node-b") }, []);
        var accepted = PeerFrameSamples.Encode(new Envelope { HelloAccepted = new HelloAccepted() }, []);
        var flush = PeerFrameSamples.Encode(new Envelope { RequestId = 11, Flush = new FlushRequest() }, []);
        await raw.SendAsync([.. hello, .. accepted, .. flush]);

        var result = await PeerHandshake.RunAsync(a, HelloOf(PeerFrameSamples.NodeA, "node-a"), "peer", HandshakeTimeout, new ListLogger()).WaitAsync(TestTimeouts.Wait);
        await using var connection = new PeerConnection(a, DelegateHandler.AlwaysOk(), PeerConnectionOptions.Default, new ListLogger(), result.Peer.NodeName);
        connection.Start();

        Assert.Equal(Envelope.BodyOneofCase.Hello, (await raw.ReceiveAsync())!.Value.Header.BodyCase);
        Assert.Equal(Envelope.BodyOneofCase.HelloAccepted, (await raw.ReceiveAsync())!.Value.Header.BodyCase);
        var reply = await raw.ReceiveIgnoringKeepaliveAsync();
        Assert.Equal(11UL, reply!.Value.Header.RequestId);
        Assert.Equal(ReplyStatus.Ok, reply.Value.Header.Reply.Status);
    }

    private static Hello HelloOf(Guid node, string name, Guid? cluster = null)
        => PeerHandshake.CreateHello(new PeerIdentity(cluster ?? PeerFrameSamples.ClusterId, node, name), []);

    private static async Task<(Task<PeerHandshakeResult> A, Task<PeerHandshakeResult> B)> RunBothAsync(Hello a, Hello b)
    {
        var (pipeA, pipeB) = DuplexPipePair.Create();
        var resultA = PeerHandshake.RunAsync(pipeA, a, "node-b-address", HandshakeTimeout, new ListLogger());
        var resultB = PeerHandshake.RunAsync(pipeB, b, "node-a-address", HandshakeTimeout, new ListLogger());
        try
        {
            await Task.WhenAll(resultA, resultB).WaitAsync(TestTimeouts.Wait);
        }
        catch (PeerHandshakeException)
        {
        }

        return (resultA, resultB);
    }

    private static async Task<(PeerHandshakeException A, PeerHandshakeException B)> FailuresOfAsync(Hello a, Hello b)
    {
        var (resultA, resultB) = await RunBothAsync(a, b);
        return (await Assert.ThrowsAsync<PeerHandshakeException>(() => resultA), await Assert.ThrowsAsync<PeerHandshakeException>(() => resultB));
    }
}

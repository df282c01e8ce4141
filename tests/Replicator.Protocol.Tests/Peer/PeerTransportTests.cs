using System.Diagnostics;
using System.Net;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Tests.Peer;

/// <summary>The peer protocol over real TCP sockets on loopback.</summary>
public sealed class PeerTransportTests
{
    private static readonly IPEndPoint AnyLoopbackPort = new(IPAddress.Loopback, 0);

    [Fact]
    public async Task Two_nodes_pair_over_tcp_and_move_megabyte_writes_and_reads()
    {
        var stored = new Dictionary<ulong, byte[]>();
        var handlerOfB = new DelegateHandler(async (request, _) =>
        {
            switch (request.Header.BodyCase)
            {
                case Envelope.BodyOneofCase.Write:
                    lock (stored)
                    {
                        stored[request.Header.Write.Offset] = request.Payload.ToArray();
                    }

                    await request.ReplyAsync(ReplyStatus.Ok);
                    break;
                case Envelope.BodyOneofCase.Read:
                    byte[] data;
                    lock (stored)
                    {
                        data = stored[request.Header.Read.Offset];
                    }

                    await request.ReplyAsync(ReplyStatus.Ok, payload: data);
                    break;
                default:
                    await request.ReplyAsync(ReplyStatus.NotSupported);
                    break;
            }
        });
        await using var listener = PeerListener.Start(AnyLoopbackPort);
        var accepting = listener.AcceptAsync().AsTask();
        await using var transportA = PeerSocketTransport.Create(await PeerTransport.ConnectAsync(listener.LocalEndPoint, TimeSpan.FromSeconds(5)).WaitAsync(TestTimeouts.Wait));
        await using var transportB = PeerSocketTransport.Create(await accepting.WaitAsync(TestTimeouts.Wait));

        var helloA = PeerHandshake.CreateHello(new PeerIdentity(PeerFrameSamples.ClusterId, PeerFrameSamples.NodeA, "node-a"), []);
        var helloB = PeerHandshake.CreateHello(new PeerIdentity(PeerFrameSamples.ClusterId, PeerFrameSamples.NodeB, "node-b"), []);
        var handshakeA = PeerHandshake.RunAsync(transportA, helloA, transportA.Name, PeerHandshake.DefaultTimeout, new ListLogger());
        var handshakeB = PeerHandshake.RunAsync(transportB, helloB, transportB.Name, PeerHandshake.DefaultTimeout, new ListLogger());
        Assert.Equal("node-b", (await handshakeA.WaitAsync(TestTimeouts.Wait)).Peer.NodeName);
        Assert.Equal("node-a", (await handshakeB.WaitAsync(TestTimeouts.Wait)).Peer.NodeName);

        var a = new PeerConnection(transportA, DelegateHandler.AlwaysOk(), PeerConnectionOptions.Default, new ListLogger(), "node-b");
        var b = new PeerConnection(transportB, handlerOfB, PeerConnectionOptions.Default, new ListLogger(), "node-a");
        a.Start();
        b.Start();

        var writes = Enumerable.Range(0, 8)
            .Select(i => a.SendRequestAsync(PeerFrameSamples.Write(1 << 20, offset: (ulong)i << 20), PeerFrameSamples.Blocks(1 << 20, seed: i)))
            .ToArray();
        foreach (var write in writes)
        {
            using var reply = await write.WaitAsync(TestTimeouts.Wait);
            Assert.True(reply.IsOk, reply.Message);
        }

        using (var read = await a.SendRequestAsync(new Envelope { Read = new ReadRequest { Offset = 3 << 20, Length = 1 << 20 } }).WaitAsync(TestTimeouts.Wait))
        {
            Assert.Equal(PeerFrameSamples.Blocks(1 << 20, seed: 3), read.Payload.ToArray());
        }

        Assert.Equal(PeerConnectionEndReason.LocalShutdown, (await a.CloseAsync("test over").WaitAsync(TestTimeouts.Wait)).Reason);
        var endOfB = await b.Completion.WaitAsync(TestTimeouts.Wait);
        Assert.Equal(PeerConnectionEndReason.RemoteClosed, endOfB.Reason);
        Assert.Contains("test over", endOfB.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_peer_whose_socket_vanishes_ends_the_connection_and_fails_its_requests()
    {
        await using var listener = PeerListener.Start(AnyLoopbackPort);
        var accepting = listener.AcceptAsync().AsTask();
        await using var transportA = PeerSocketTransport.Create(await PeerTransport.ConnectAsync(listener.LocalEndPoint, TimeSpan.FromSeconds(5)).WaitAsync(TestTimeouts.Wait));
        var transportB = PeerSocketTransport.Create(await accepting.WaitAsync(TestTimeouts.Wait));
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var b = new PeerConnection(transportB, new DelegateHandler(async (_, token) =>
        {
            started.SetResult();
            await Task.Delay(Timeout.Infinite, token);
        }), PeerConnectionOptions.Default, new ListLogger(), "node-a");
        var a = new PeerConnection(transportA, DelegateHandler.AlwaysOk(), PeerConnectionOptions.Default, new ListLogger(), "node-b");
        a.Start();
        b.Start();

        var request = a.SendRequestAsync(new Envelope { Flush = new FlushRequest() });
        await started.Task.WaitAsync(TestTimeouts.Wait);
        await transportB.DisposeAsync();

        var end = await a.Completion.WaitAsync(TestTimeouts.Wait);
        Assert.Contains(end.Reason, new[] { PeerConnectionEndReason.RemoteClosed, PeerConnectionEndReason.TransportError });
        var closed = await Assert.ThrowsAsync<PeerConnectionClosedException>(() => request.WaitAsync(TestTimeouts.Wait));
        Assert.Equal(end.Reason, closed.Reason);
        await b.Completion.WaitAsync(TestTimeouts.Wait);
    }

    [Fact]
    public async Task Connecting_where_nobody_listens_fails_at_once_with_the_address()
    {
        IPEndPoint unused;
        await using (var listener = PeerListener.Start(AnyLoopbackPort))
        {
            unused = listener.LocalEndPoint;
        }

        var clock = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<PeerConnectException>(() => PeerTransport.ConnectAsync(unused, TimeSpan.FromSeconds(5)).WaitAsync(TestTimeouts.Wait));

        Assert.Contains($"Cannot connect to peer {unused}", error.Message, StringComparison.Ordinal);
        Assert.Contains("ConnectionRefused", error.Message, StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Listening_on_an_address_in_use_is_a_clear_error()
    {
        await using var first = PeerListener.Start(AnyLoopbackPort);

        var error = Assert.Throws<PeerConnectException>(() => PeerListener.Start(first.LocalEndPoint));

        Assert.Contains($"Cannot listen for peers on {first.LocalEndPoint}", error.Message, StringComparison.Ordinal);
    }
}

using System.Collections.Concurrent;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Tests.Peer;

/// <summary>The bound on request payloads a connection holds at once: the receiver's window, and the sender keeping within it.</summary>
public sealed class PeerReceiveWindowTests
{
    private const int Window = 1 << 20;
    private const int Half = Window / 2;

    [Fact]
    public async Task A_peer_that_overruns_the_receive_window_is_held_back_in_its_socket_until_replies_free_room()
    {
        var (near, far) = DuplexPipePair.Create();
        var held = new HeldRequests();
        var log = new ListLogger();
        var connection = new PeerConnection(near, held, PeerConnectionOptions.Default with { ReceiveWindow = Window }, log, "node-a");
        connection.Start();
        var raw = new RawPeer(far);

        await raw.SendAsync(WriteFrame(1));
        await raw.SendAsync(WriteFrame(2));
        var third = raw.SendAsync(WriteFrame(3));

        await WaitUntilAsync(() => log.Contains("its receive window of 1048576 bytes"));
        Assert.Equal([1UL, 2UL], held.Ids);

        await held.ReplyToFirstAsync();

        await WaitUntilAsync(() => held.Ids.Count == 2 && held.Ids.Contains(3UL));
        await third.WaitAsync(TestTimeouts.Wait);
        await held.ReplyToFirstAsync();
        await held.ReplyToFirstAsync();
        await connection.CloseAsync().WaitAsync(TestTimeouts.Wait);
    }

    [Fact]
    public async Task A_sender_keeps_its_payloads_in_flight_within_the_peer_s_window()
    {
        var held = new HeldRequests();
        var options = PeerConnectionOptions.Default with { ReceiveWindow = Window, PeerReceiveWindow = Window };
        await using var pair = ConnectionPair.Create(held, options);

        var writes = Enumerable.Range(0, 4).Select(i => pair.A.SendRequestAsync(PeerFrameSamples.Write(Half, (ulong)i * Half), PeerFrameSamples.Blocks(Half, i))).ToList();

        await WaitUntilAsync(() => held.Ids.Count == 2);
        await Task.Delay(200);
        Assert.Equal(2, held.Ids.Count);
        for (var answered = 0; answered < 4; answered++)
        {
            await WaitUntilAsync(() => held.Ids.Count > 0);
            await held.ReplyToFirstAsync();
        }

        foreach (var write in writes)
        {
            using var reply = await write.WaitAsync(TestTimeouts.Wait);
            Assert.True(reply.IsOk);
        }

        Assert.False(pair.LogB.Contains("receive window"), "a sender that keeps within the window never makes the receiver wait");
    }

    [Fact]
    public async Task A_window_serves_in_order_and_a_request_larger_than_it_waits_for_all_of_it()
    {
        var window = new ByteWindow(100);
        Assert.True(window.TryTake(60));
        var large = window.TakeAsync(500, CancellationToken.None).AsTask();
        var small = window.TakeAsync(10, CancellationToken.None).AsTask();
        Assert.False(window.TryTake(10), "nobody overtakes a waiter");
        Assert.False(large.IsCompleted);

        window.Release(60);

        Assert.Equal(100, await large.WaitAsync(TestTimeouts.Wait));
        Assert.False(small.IsCompleted);
        window.Release(100);
        Assert.Equal(10, await small.WaitAsync(TestTimeouts.Wait));
        Assert.Equal(10, window.InUse);
    }

    [Fact]
    public async Task A_cancelled_wait_takes_nothing_and_lets_the_next_one_in()
    {
        var window = new ByteWindow(100);
        Assert.True(window.TryTake(100));
        using var cancel = new CancellationTokenSource();
        var cancelled = window.TakeAsync(80, cancel.Token).AsTask();
        var next = window.TakeAsync(20, CancellationToken.None).AsTask();

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WaitAsync(TestTimeouts.Wait));
        window.Release(30);

        Assert.Equal(20, await next.WaitAsync(TestTimeouts.Wait));
        Assert.Equal(90, window.InUse);
    }

    private static byte[] WriteFrame(ulong requestId)
    {
        var header = PeerFrameSamples.Write(Half, requestId * Half);
        header.RequestId = requestId;
        return PeerFrameSamples.Encode(header, PeerFrameSamples.Blocks(Half, (int)requestId));
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TestTimeouts.Wait;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the condition did not hold in time");
            await Task.Delay(10);
        }
    }

    /// <summary>A handler that keeps every request unanswered until the test replies to it.</summary>
    private sealed class HeldRequests : IPeerRequestHandler
    {
        private readonly ConcurrentQueue<(PeerIncomingRequest Request, TaskCompletionSource Done)> _held = new();

        public IReadOnlyList<ulong> Ids => _held.Select(h => h.Request.RequestId).ToList();

        public async ValueTask HandleAsync(PeerIncomingRequest request, CancellationToken cancellationToken)
        {
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _held.Enqueue((request, done));
            await done.Task.WaitAsync(cancellationToken);
        }

        public async Task ReplyToFirstAsync()
        {
            Assert.True(_held.TryDequeue(out var first));
            await first.Request.ReplyAsync(ReplyStatus.Ok);
            first.Done.SetResult();
        }
    }
}

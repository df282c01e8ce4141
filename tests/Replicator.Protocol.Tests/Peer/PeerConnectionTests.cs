using System.Collections.Concurrent;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Tests.Peer;

public sealed class PeerConnectionTests
{
    [Fact]
    public async Task A_write_reaches_the_handler_with_its_payload_and_the_reply_comes_back()
    {
        var data = PeerFrameSamples.Blocks(64 * 1024);
        var seen = new TaskCompletionSource<(ulong Offset, byte[] Data)>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var pair = ConnectionPair.Create(new DelegateHandler(async (request, _) =>
        {
            seen.TrySetResult((request.Header.Write.Offset, request.Payload.ToArray()));
            await request.ReplyAsync(ReplyStatus.Ok);
        }));

        using var reply = await pair.A.SendRequestAsync(PeerFrameSamples.Write(data.Length, offset: 1 << 20), data).WaitAsync(TestTimeouts.Wait);

        Assert.True(reply.IsOk);
        var (offset, received) = await seen.Task.WaitAsync(TestTimeouts.Wait);
        Assert.Equal(1UL << 20, offset);
        Assert.Equal(data, received);
    }

    [Fact]
    public async Task A_read_reply_carries_its_data()
    {
        await using var pair = ConnectionPair.Create(DelegateHandler.AlwaysOk());

        using var reply = await pair.A.SendRequestAsync(new Envelope { Read = new ReadRequest { VolumeId = PeerFrameSamples.Volume0.ToString(), Length = 300 } }).WaitAsync(TestTimeouts.Wait);

        Assert.True(reply.IsOk);
        Assert.Equal(Enumerable.Range(0, 300).Select(i => (byte)i).ToArray(), reply.Payload.ToArray());
    }

    [Fact]
    public async Task Many_requests_in_flight_are_answered_out_of_order_and_each_gets_its_own_reply()
    {
        const int count = 64;
        var arrived = new ConcurrentQueue<PeerIncomingRequest>();
        var allArrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var pair = ConnectionPair.Create(new DelegateHandler(async (request, _) =>
        {
            arrived.Enqueue(request);
            if (arrived.Count == count)
            {
                allArrived.TrySetResult();
            }

            await release.Task;
        }));

        var replies = Enumerable.Range(0, count)
            .Select(i => pair.A.SendRequestAsync(PeerFrameSamples.Write(512, offset: (ulong)i * 512), PeerFrameSamples.Blocks(512, seed: i)))
            .ToArray();
        await allArrived.Task.WaitAsync(TestTimeouts.Wait);
        foreach (var request in arrived.Reverse())
        {
            await request.ReplyAsync(ReplyStatus.Ok, $"offset {request.Header.Write.Offset}");
        }

        release.SetResult();

        for (var i = 0; i < count; i++)
        {
            using var reply = await replies[i].WaitAsync(TestTimeouts.Wait);
            Assert.Equal($"offset {i * 512}", reply.Message);
        }
    }

    [Fact]
    public async Task Statuses_other_than_ok_reach_the_sender_with_their_message()
    {
        await using var pair = ConnectionPair.Create(new DelegateHandler((request, _) => request.ReplyAsync(ReplyStatus.NoSpace, "pool full")));

        using var reply = await pair.A.SendRequestAsync(new Envelope { Trim = new TrimRequest { Length = 4096 } }).WaitAsync(TestTimeouts.Wait);

        Assert.Equal(ReplyStatus.NoSpace, reply.Status);
        var exception = Assert.Throws<PeerRequestFailedException>(reply.ThrowIfFailed);
        Assert.Equal(ReplyStatus.NoSpace, exception.Status);
        Assert.Contains("pool full", exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_handler_that_throws_is_answered_with_an_io_error_and_logged()
    {
        await using var pair = ConnectionPair.Create(new DelegateHandler((_, _) => throw new InvalidOperationException("disk on fire")));

        using var reply = await pair.A.SendRequestAsync(new Envelope { Flush = new FlushRequest() }).WaitAsync(TestTimeouts.Wait);

        Assert.Equal(ReplyStatus.IoError, reply.Status);
        Assert.Contains("disk on fire", reply.Message, StringComparison.Ordinal);
        Assert.True(pair.LogB.Contains("failed; replying IO_ERROR"));
    }

    [Fact]
    public async Task A_handler_that_forgets_to_reply_is_answered_with_an_io_error()
    {
        await using var pair = ConnectionPair.Create(new DelegateHandler((_, _) => ValueTask.CompletedTask));

        using var reply = await pair.A.SendRequestAsync(new Envelope { Flush = new FlushRequest() }).WaitAsync(TestTimeouts.Wait);

        Assert.Equal(ReplyStatus.IoError, reply.Status);
        Assert.Contains("did not answer", reply.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_request_is_replied_to_only_once()
    {
        var second = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var pair = ConnectionPair.Create(new DelegateHandler(async (request, _) =>
        {
            await request.ReplyAsync(ReplyStatus.Ok);
            second.SetResult(Record.Exception(() => request.ReplyAsync(ReplyStatus.IoError)));
        }));

        using var reply = await pair.A.SendRequestAsync(new Envelope { Flush = new FlushRequest() }).WaitAsync(TestTimeouts.Wait);

        Assert.True(reply.IsOk);
        Assert.IsType<InvalidOperationException>(await second.Task.WaitAsync(TestTimeouts.Wait));
    }

    [Fact]
    public async Task Control_messages_cannot_be_sent_as_requests()
    {
        await using var pair = ConnectionPair.Create(DelegateHandler.AlwaysOk());

        await Assert.ThrowsAsync<ArgumentException>(() => pair.A.SendRequestAsync(new Envelope { Ping = new Ping() }));
        await Assert.ThrowsAsync<ArgumentException>(() => pair.A.SendRequestAsync(new Envelope { Reply = new Reply() }));
        await Assert.ThrowsAsync<ArgumentException>(() => pair.A.SendRequestAsync(new Envelope()));
    }

    [Fact]
    public async Task Cancelling_a_wait_leaves_the_connection_usable_and_drops_the_late_reply()
    {
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var pair = ConnectionPair.Create(new DelegateHandler(async (request, _) =>
        {
            if (request.Header.Write.Offset == 0)
            {
                await hold.Task;
            }

            await request.ReplyAsync(ReplyStatus.Ok);
        }));
        using var cancel = new CancellationTokenSource();

        var waiting = pair.A.SendRequestAsync(PeerFrameSamples.Write(8, offset: 0), new byte[8], cancel.Token);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(TestTimeouts.Wait));
        hold.SetResult();

        using var next = await pair.A.SendRequestAsync(PeerFrameSamples.Write(8, offset: 8), new byte[8]).WaitAsync(TestTimeouts.Wait);
        Assert.True(next.IsOk);
        Assert.Null(pair.A.End);
    }

    [Fact]
    public async Task Closing_says_goodbye_and_the_peer_learns_why()
    {
        var pair = ConnectionPair.Create(DelegateHandler.AlwaysOk());

        var localEnd = await pair.A.CloseAsync("node maintenance").WaitAsync(TestTimeouts.Wait);
        var remoteEnd = await pair.B.Completion.WaitAsync(TestTimeouts.Wait);

        Assert.Equal(PeerConnectionEndReason.LocalShutdown, localEnd.Reason);
        Assert.Equal(PeerConnectionEndReason.RemoteClosed, remoteEnd.Reason);
        Assert.Contains("node maintenance", remoteEnd.Message, StringComparison.Ordinal);
        var closed = await Assert.ThrowsAsync<PeerConnectionClosedException>(() => pair.A.SendRequestAsync(new Envelope { Flush = new FlushRequest() }));
        Assert.Equal(PeerConnectionEndReason.LocalShutdown, closed.Reason);
    }

    [Fact]
    public async Task Closing_cancels_running_handlers_and_waits_for_them()
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handlerSawCancellation = false;
        var pair = ConnectionPair.Create(new DelegateHandler(async (_, cancellationToken) =>
        {
            started.SetResult();
            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                handlerSawCancellation = true;
                throw;
            }
        }));

        var request = pair.A.SendRequestAsync(new Envelope { Flush = new FlushRequest() });
        await started.Task.WaitAsync(TestTimeouts.Wait);
        await pair.B.CloseAsync().WaitAsync(TestTimeouts.Wait);

        Assert.True(handlerSawCancellation);
        var closed = await Assert.ThrowsAsync<PeerConnectionClosedException>(() => request.WaitAsync(TestTimeouts.Wait));
        Assert.Equal(PeerConnectionEndReason.RemoteClosed, closed.Reason);
        await pair.A.Completion.WaitAsync(TestTimeouts.Wait);
    }

    [Fact]
    public async Task Pending_requests_fail_with_the_reason_when_the_peer_goes_away()
    {
        var (a, b) = DuplexPipePair.Create();
        await using var connection = new PeerConnection(a, DelegateHandler.AlwaysOk(), PeerConnectionOptions.Default, new ListLogger(), "node-b");
        connection.Start();

        var request = connection.SendRequestAsync(new Envelope { Flush = new FlushRequest() });
        await b.Output.CompleteAsync();

        var closed = await Assert.ThrowsAsync<PeerConnectionClosedException>(() => request.WaitAsync(TestTimeouts.Wait));
        Assert.Equal(PeerConnectionEndReason.RemoteClosed, closed.Reason);
        Assert.Contains("node-b", closed.Message, StringComparison.Ordinal);
        Assert.Equal(PeerConnectionEndReason.RemoteClosed, (await connection.Completion.WaitAsync(TestTimeouts.Wait)).Reason);
    }

    [Fact]
    public void Options_that_cannot_work_are_refused_with_the_setting_named()
    {
        Assert.Equal(TimeSpan.FromSeconds(2), PeerConnectionOptions.Default.KeepaliveTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(500), PeerConnectionOptions.Default.EffectiveReadLease);
        Assert.Equal(TimeSpan.FromMilliseconds(500) / 3, PeerConnectionOptions.Default.EffectiveKeepaliveInterval);

        var (a, _) = DuplexPipePair.Create();
        var invalid = new[]
        {
            PeerConnectionOptions.Default with { KeepaliveTimeout = TimeSpan.Zero },
            PeerConnectionOptions.Default with { KeepaliveInterval = TimeSpan.FromSeconds(3) },
            PeerConnectionOptions.Default with { ReadLease = TimeSpan.FromSeconds(3) },
            PeerConnectionOptions.Default with { ReadLease = TimeSpan.FromMilliseconds(100), KeepaliveInterval = TimeSpan.FromMilliseconds(100) },
            PeerConnectionOptions.Default with { MaxRequestsInFlight = 0 },
            PeerConnectionOptions.Default with { MaxChecksumRetries = -1 },
            PeerConnectionOptions.Default with { FrameLimits = new PeerFrameLimits(0, 1) },
        };
        foreach (var options in invalid)
        {
            Assert.Throws<ArgumentOutOfRangeException>(() => new PeerConnection(a, DelegateHandler.AlwaysOk(), options, new ListLogger(), "node-b"));
        }
    }
}

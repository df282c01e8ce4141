using System.Diagnostics;
using System.IO.Pipelines;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Tests.Peer;

/// <summary>A peer that stops answering (SIGSTOP, a dropped link) is declared dead though its connection never closes.</summary>
public sealed class PeerKeepaliveTests
{
    private static readonly PeerConnectionOptions ShortKeepalive = PeerConnectionOptions.Default with { KeepaliveTimeout = TimeSpan.FromMilliseconds(400) };

    /// <summary>Timeout plus one keepalive interval, plus room for a loaded test machine.</summary>
    private static readonly TimeSpan DeclaredDeadWithin = TimeSpan.FromMilliseconds(400 + 100 + 1500);

    [Fact]
    public async Task A_silent_peer_is_declared_dead_within_the_timeout_and_pending_requests_fail()
    {
        var (a, _) = DuplexPipePair.Create();
        var log = new ListLogger();
        await using var connection = new PeerConnection(a, DelegateHandler.AlwaysOk(), ShortKeepalive, log, "node-b");
        var clock = Stopwatch.StartNew();
        connection.Start();

        var request = connection.SendRequestAsync(new Envelope { Flush = new FlushRequest() });
        var end = await connection.Completion.WaitAsync(TestTimeouts.Wait);
        var elapsed = clock.Elapsed;

        Assert.Equal(PeerConnectionEndReason.KeepaliveTimeout, end.Reason);
        Assert.InRange(elapsed, TimeSpan.FromMilliseconds(400), DeclaredDeadWithin);
        var closed = await Assert.ThrowsAsync<PeerConnectionClosedException>(() => request.WaitAsync(TestTimeouts.Wait));
        Assert.Equal(PeerConnectionEndReason.KeepaliveTimeout, closed.Reason);
        Assert.Contains("keepalive timeout 400 ms", closed.Message, StringComparison.Ordinal);
        Assert.True(log.Contains("KeepaliveTimeout"));
    }

    [Fact]
    public async Task A_peer_that_stops_reading_is_declared_dead_even_while_a_send_is_stuck()
    {
        var (a, _) = DuplexPipePair.Create(new PipeOptions(pauseWriterThreshold: 64 * 1024, resumeWriterThreshold: 32 * 1024));
        await using var connection = new PeerConnection(a, DelegateHandler.AlwaysOk(), ShortKeepalive, new ListLogger(), "node-b");
        var clock = Stopwatch.StartNew();
        connection.Start();

        var stuck = connection.SendRequestAsync(PeerFrameSamples.Write(1024 * 1024), PeerFrameSamples.Blocks(1024 * 1024));
        var end = await connection.Completion.WaitAsync(TestTimeouts.Wait);

        Assert.Equal(PeerConnectionEndReason.KeepaliveTimeout, end.Reason);
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(400), DeclaredDeadWithin);
        var closed = await Assert.ThrowsAsync<PeerConnectionClosedException>(() => stuck.WaitAsync(TestTimeouts.Wait));
        Assert.Equal(PeerConnectionEndReason.KeepaliveTimeout, closed.Reason);
    }

    [Fact]
    public async Task An_idle_but_healthy_pair_stays_connected_on_pings_alone()
    {
        await using var pair = ConnectionPair.Create(DelegateHandler.AlwaysOk(), ShortKeepalive);

        await Task.Delay(TimeSpan.FromMilliseconds(1500));

        Assert.Null(pair.A.End);
        Assert.Null(pair.B.End);
        Assert.NotNull(pair.A.LastRoundTrip);
        using var reply = await pair.A.SendRequestAsync(new Envelope { Flush = new FlushRequest() }).WaitAsync(TestTimeouts.Wait);
        Assert.True(reply.IsOk);
    }
}

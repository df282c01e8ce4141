using System.Diagnostics;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;
using Replicator.Protocol.Tests.Nbd.Support;

namespace Replicator.Protocol.Tests.Peer;

/// <summary>
/// The read lease over a real connection: each side holds one from the other's Pongs, loses it
/// when the Pongs stop (before the keepalive timeout declares the peer gone), and the promise a
/// side granted outlives the connection by the lease, no longer.
/// </summary>
public sealed class PeerReadLeaseTests
{
    [Fact]
    public async Task Both_sides_of_a_healthy_connection_hold_the_read_lease()
    {
        await using var pair = ConnectionPair.Create(DelegateHandler.AlwaysOk());

        await Eventually.WaitUntilAsync(() => pair.A.ReadLease.IsHeld && pair.B.ReadLease.IsHeld, "both sides hold the lease");

        // Three leases later both still hold one: the Pings renew it, not just the first.
        await Task.Delay(TimeSpan.FromMilliseconds(1500));
        Assert.True(await pair.A.ReadLease.WaitHeldAsync(TimeSpan.FromSeconds(1), CancellationToken.None));
        Assert.True(await pair.B.ReadLease.WaitHeldAsync(TimeSpan.FromSeconds(1), CancellationToken.None));
    }

    [Fact]
    public async Task A_peer_that_stops_answering_takes_the_lease_away_before_the_keepalive_timeout()
    {
        var (connection, raw) = StartWithRawPeer();
        await using var _ = connection;

        var ping = (await raw.ReceiveAsync())!.Value.Header.Ping;
        Assert.Equal(500_000, ping.LeaseUs);
        await raw.SendAsync(new Envelope { Pong = new Pong { Nonce = ping.Nonce, SentAtUs = ping.SentAtUs, LeaseUs = ping.LeaseUs } });
        await Eventually.WaitUntilAsync(() => connection.ReadLease.IsHeld, "the Pong gives the lease");

        // No more Pongs: the lease is gone within half a second of the Ping, while the keepalive
        // (2 s) still counts the peer as connected.
        await Eventually.WaitUntilAsync(() => !connection.ReadLease.IsHeld, "the lease runs out");
        Assert.Null(connection.End);
        var waiting = connection.ReadLease.WaitHeldAsync(TestTimeouts.Wait, CancellationToken.None).AsTask();
        await Task.Delay(100);
        Assert.False(waiting.IsCompleted);

        // The connection ends: the wait for a lease returns, without one.
        var end = await connection.Completion.WaitAsync(TestTimeouts.Wait);
        Assert.Equal(PeerConnectionEndReason.KeepaliveTimeout, end.Reason);
        Assert.False(await waiting.WaitAsync(TestTimeouts.Wait));
    }

    [Fact]
    public async Task A_lease_granted_is_capped_at_the_keepalive_timeout_and_outlives_the_connection()
    {
        var (connection, raw) = StartWithRawPeer();
        await using var _ = connection;

        var asked = Stopwatch.StartNew();
        await raw.SendAsync(new Envelope { Ping = new Ping { Nonce = 7, SentAtUs = 1, LeaseUs = 60_000_000 } });
        var pong = await NextPongAsync(raw);
        Assert.Equal(7UL, pong.Nonce);
        Assert.Equal(2_000_000, pong.LeaseUs);

        await connection.CloseAsync("the test is done").WaitAsync(TestTimeouts.Wait);
        Assert.True(connection.ReadLease.IsClosed);
        Assert.False(connection.ReadLease.GrantsExpired);
        await connection.ReadLease.WaitGrantsExpiredAsync(TestTimeouts.Wait, CancellationToken.None);
        Assert.True(asked.Elapsed >= TimeSpan.FromSeconds(2), $"the promise ran out {asked.Elapsed.TotalMilliseconds:F0} ms after the Ping");
        Assert.True(connection.ReadLease.GrantsExpired);
    }

    [Fact]
    public async Task A_peer_that_says_goodbye_is_owed_no_promise_and_one_that_just_goes_is()
    {
        var (polite, politeRaw) = StartWithRawPeer();
        await using var _ = polite;
        var (abrupt, abruptRaw) = StartWithRawPeer();
        await using var __ = abrupt;
        foreach (var raw in new[] { politeRaw, abruptRaw })
        {
            await raw.SendAsync(new Envelope { Ping = new Ping { Nonce = 3, SentAtUs = 1, LeaseUs = 2_000_000 } });
            Assert.Equal(2_000_000, (await NextPongAsync(raw)).LeaseUs);
        }

        await politeRaw.SendAsync(new Envelope { Goodbye = new Goodbye { Reason = "node maintenance" } });
        await abruptRaw.CloseAsync();
        Assert.Equal(PeerConnectionEndReason.RemoteClosed, (await polite.Completion.WaitAsync(TestTimeouts.Wait)).Reason);
        Assert.Equal(PeerConnectionEndReason.RemoteClosed, (await abrupt.Completion.WaitAsync(TestTimeouts.Wait)).Reason);

        Assert.True(polite.ReadLease.GrantsExpired);
        Assert.False(abrupt.ReadLease.GrantsExpired);
    }

    [Fact]
    public async Task Saying_goodbye_gives_up_the_read_lease_before_the_goodbye_leaves()
    {
        await using var pair = ConnectionPair.Create(DelegateHandler.AlwaysOk());
        await Eventually.WaitUntilAsync(() => pair.A.ReadLease.IsHeld, "A holds the lease");

        await pair.A.CloseAsync("node maintenance").WaitAsync(TestTimeouts.Wait);
        await pair.B.Completion.WaitAsync(TestTimeouts.Wait);

        Assert.False(pair.A.ReadLease.IsHeld);
        Assert.True(pair.B.ReadLease.GrantsExpired);
    }

    [Theory]
    [InlineData(long.MaxValue, 2_000_000)]
    [InlineData(-5, 0)]
    public async Task A_lease_asked_for_out_of_bounds_is_granted_within_them_and_the_connection_stays_up(long askedUs, long grantedUs)
    {
        var (connection, raw) = StartWithRawPeer();
        await using var _ = connection;

        await raw.SendAsync(new Envelope { Ping = new Ping { Nonce = 9, SentAtUs = 1, LeaseUs = askedUs } });
        var pong = await NextPongAsync(raw);

        Assert.Equal(grantedUs, pong.LeaseUs);
        Assert.Null(connection.End);
    }

    [Fact]
    public async Task A_pong_granting_more_than_was_asked_gives_only_what_was_asked()
    {
        var (connection, raw) = StartWithRawPeer();
        await using var _ = connection;

        var ping = (await raw.ReceiveAsync())!.Value.Header.Ping;
        await raw.SendAsync(new Envelope { Pong = new Pong { Nonce = ping.Nonce, SentAtUs = ping.SentAtUs, LeaseUs = long.MaxValue } });
        await Eventually.WaitUntilAsync(() => connection.ReadLease.IsHeld, "the Pong gives the lease");
        await Eventually.WaitUntilAsync(() => !connection.ReadLease.IsHeld, "the lease runs out after the 500 ms asked for");
        Assert.Null(connection.End);
    }

    [Fact]
    public async Task A_connection_that_has_ended_grants_no_lease()
    {
        var (connection, _) = StartWithRawPeer();
        await using var __ = connection;
        await connection.CloseAsync("the test is done").WaitAsync(TestTimeouts.Wait);

        Assert.False(connection.ReadLease.TryGrant(TimeSpan.FromSeconds(1)));
        Assert.True(connection.ReadLease.GrantsExpired);
        await connection.ReadLease.WaitGrantsExpiredAsync(TimeSpan.Zero, CancellationToken.None);
    }

    /// <summary>A started connection whose peer the test drives by hand.</summary>
    private static (PeerConnection Connection, RawPeer Raw) StartWithRawPeer()
    {
        var (a, b) = DuplexPipePair.Create();
        var connection = new PeerConnection(a, DelegateHandler.AlwaysOk(), PeerConnectionOptions.Default, new ListLogger(), "node-b");
        connection.Start();
        return (connection, new RawPeer(b));
    }

    private static async Task<Pong> NextPongAsync(RawPeer raw)
    {
        while (true)
        {
            var frame = await raw.ReceiveAsync() ?? throw new InvalidOperationException("the connection closed before it answered the Ping");
            if (frame.Header.BodyCase == Envelope.BodyOneofCase.Pong)
            {
                return frame.Header.Pong;
            }
        }
    }
}

using System.Diagnostics;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Peer;

internal sealed partial class PeerConnection
{
    private const int PingsRemembered = 16;

    private readonly Lock _pingsLock = new();
    private readonly (ulong Nonce, long SentTimestamp)[] _pingsSent = new (ulong, long)[PingsRemembered];
    private long _lastReceivedTimestamp;
    private long _lastRoundTripTicks = -1;
    private ulong _lastPingNonce;

    /// <summary>The last Ping round trip measured; null until the first Pong.</summary>
    public TimeSpan? LastRoundTrip => Volatile.Read(ref _lastRoundTripTicks) is var ticks and >= 0 ? TimeSpan.FromTicks(ticks) : null;

    private void MarkReceived() => Volatile.Write(ref _lastReceivedTimestamp, Stopwatch.GetTimestamp());

    /// <summary>
    /// Pings at once (for a first read lease), then every keepalive interval: ends the connection
    /// when nothing (no frame, not a byte) has arrived for the keepalive timeout, otherwise sends a
    /// Ping so that the peer, too, hears from us and renews our read lease. A Ping stuck behind a
    /// peer that stopped reading is not waited for, so a dead peer is declared within the timeout
    /// plus one interval even when the TCP connection stays open.
    /// </summary>
    /// <remarks>
    /// A tick that comes more than an interval late means this process itself did not run for a
    /// while (a GC pause, CPU starvation, a suspended VM): what the peer sent meanwhile may still
    /// sit unread, so that silence is not the peer's. The verdict then waits one more interval,
    /// for the receive loop to catch up.
    /// </remarks>
    private async Task KeepaliveLoopAsync()
    {
        var interval = _options.EffectiveKeepaliveInterval;
        using var timer = new PeriodicTimer(interval);
        var ping = SendPingAsync();
        var lastTick = Stopwatch.GetTimestamp();
        var judgeFrom = lastTick;
        try
        {
            while (await timer.WaitForNextTickAsync(_closing.Token))
            {
                var now = Stopwatch.GetTimestamp();
                if (Stopwatch.GetElapsedTime(lastTick, now) > 2 * interval)
                {
                    judgeFrom = now + (long)(interval.TotalSeconds * Stopwatch.Frequency);
                }

                lastTick = now;
                var silence = Stopwatch.GetElapsedTime(Volatile.Read(ref _lastReceivedTimestamp), now);
                if (silence >= _options.KeepaliveTimeout && now >= judgeFrom)
                {
                    var message = $"nothing received from the peer for {silence.TotalMilliseconds:F0} ms (keepalive timeout {_options.KeepaliveTimeout.TotalMilliseconds:F0} ms): it is stopped, hung or unreachable";
                    TryEnd(new PeerConnectionEnd(PeerConnectionEndReason.KeepaliveTimeout, message));
                    break;
                }

                if (ping.IsCompleted)
                {
                    ping = SendPingAsync();
                }
            }
        }
        catch (OperationCanceledException)
        {
        }

        await ping;
    }

    /// <summary>Sends a Ping asking for the read lease, remembering when it left for when its Pong grants it.</summary>
    private Task SendPingAsync()
    {
        var nonce = ++_lastPingNonce;
        lock (_pingsLock)
        {
            _pingsSent[nonce % PingsRemembered] = (nonce, Stopwatch.GetTimestamp());
        }

        var lease = _options.EffectiveReadLease;
        return SendControlAsync(new Envelope { Ping = new Ping { Nonce = nonce, SentAtUs = UnixMicroseconds(), LeaseUs = lease.Ticks / TimeSpan.TicksPerMicrosecond } });
    }

    /// <summary>
    /// Answers a Ping. The lease granted is the one asked for, but no longer than this node's
    /// keepalive timeout: when this node declares the peer gone for silence, it has then received
    /// no Ping for that long, so no promise is left to hold up its writes alone.
    /// </summary>
    private void AnswerPing(Ping ping)
    {
        var granted = Microseconds(ping.LeaseUs, _options.KeepaliveTimeout);
        if (granted > TimeSpan.Zero && !ReadLease.TryGrant(granted))
        {
            granted = TimeSpan.Zero;
        }

        _ = SendControlAsync(new Envelope { Pong = new Pong { Nonce = ping.Nonce, SentAtUs = ping.SentAtUs, LeaseUs = granted.Ticks / TimeSpan.TicksPerMicrosecond } });
    }

    /// <summary>A Pong: renews the read lease from the time its Ping left, and measures the round trip.</summary>
    private void OnPong(Pong pong)
    {
        long sentTimestamp = 0;
        lock (_pingsLock)
        {
            var sent = _pingsSent[pong.Nonce % PingsRemembered];
            if (sent.Nonce == pong.Nonce && pong.Nonce != 0)
            {
                sentTimestamp = sent.SentTimestamp;
            }
        }

        if (sentTimestamp != 0)
        {
            // Never more than was asked for, whatever the peer says.
            ReadLease.Renew(sentTimestamp, Microseconds(pong.LeaseUs, _options.EffectiveReadLease));
        }

        RecordRoundTrip(pong);
    }

    private void RecordRoundTrip(Pong pong)
    {
        var roundTripUs = UnixMicroseconds() - pong.SentAtUs;
        if (roundTripUs >= 0)
        {
            Volatile.Write(ref _lastRoundTripTicks, roundTripUs * TimeSpan.TicksPerMicrosecond);
        }
    }

    /// <summary>A lease from the wire, in microseconds, held between zero and <paramref name="most"/>.</summary>
    private static TimeSpan Microseconds(long microseconds, TimeSpan most) =>
        TimeSpan.FromTicks(Math.Clamp(microseconds, 0, most.Ticks / TimeSpan.TicksPerMicrosecond) * TimeSpan.TicksPerMicrosecond);

    private static long UnixMicroseconds() => (DateTimeOffset.UtcNow - DateTimeOffset.UnixEpoch).Ticks / TimeSpan.TicksPerMicrosecond;
}

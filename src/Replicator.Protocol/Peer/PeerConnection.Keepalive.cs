using System.Diagnostics;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Peer;

internal sealed partial class PeerConnection
{
    private long _lastReceivedTimestamp;
    private long _lastRoundTripTicks = -1;
    private ulong _lastPingNonce;

    /// <summary>The last Ping round trip measured; null until the first Pong.</summary>
    public TimeSpan? LastRoundTrip => Volatile.Read(ref _lastRoundTripTicks) is var ticks and >= 0 ? TimeSpan.FromTicks(ticks) : null;

    private void MarkReceived() => Volatile.Write(ref _lastReceivedTimestamp, Stopwatch.GetTimestamp());

    /// <summary>
    /// Every keepalive interval: ends the connection when nothing (no frame, not a byte) has
    /// arrived for the keepalive timeout, otherwise sends a Ping so that the peer, too, hears
    /// from us. A Ping stuck behind a peer that stopped reading is not waited for, so a dead peer
    /// is declared within the timeout plus one interval even when the TCP connection stays open.
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
        var ping = Task.CompletedTask;
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
                    ping = SendControlAsync(new Envelope { Ping = new Ping { Nonce = ++_lastPingNonce, SentAtUs = UnixMicroseconds() } });
                }
            }
        }
        catch (OperationCanceledException)
        {
        }

        await ping;
    }

    private void RecordRoundTrip(Pong pong)
    {
        var roundTripUs = UnixMicroseconds() - pong.SentAtUs;
        if (roundTripUs >= 0)
        {
            Volatile.Write(ref _lastRoundTripTicks, roundTripUs * TimeSpan.TicksPerMicrosecond);
        }
    }

    private static long UnixMicroseconds() => (DateTimeOffset.UtcNow - DateTimeOffset.UnixEpoch).Ticks / TimeSpan.TicksPerMicrosecond;
}

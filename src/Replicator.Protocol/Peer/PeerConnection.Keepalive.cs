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
    private async Task KeepaliveLoopAsync()
    {
        using var timer = new PeriodicTimer(_options.EffectiveKeepaliveInterval);
        var ping = Task.CompletedTask;
        try
        {
            while (await timer.WaitForNextTickAsync(_closing.Token))
            {
                var silence = Stopwatch.GetElapsedTime(Volatile.Read(ref _lastReceivedTimestamp));
                if (silence >= _options.KeepaliveTimeout)
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

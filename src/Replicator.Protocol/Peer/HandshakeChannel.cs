using System.IO.Pipelines;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Peer;

/// <summary>
/// Frame-at-a-time I/O for the handshake, before a <see cref="PeerConnection"/> owns the pipe.
/// Reads consume exactly one frame, so whatever the peer sends right after the handshake stays
/// in the pipe for the connection.
/// </summary>
internal sealed class HandshakeChannel
{
    private readonly IDuplexPipe _transport;
    private readonly CancellationToken _cancellationToken;

    public HandshakeChannel(IDuplexPipe transport, CancellationToken cancellationToken)
    {
        _transport = transport;
        _cancellationToken = cancellationToken;
    }

    public async ValueTask SendAsync(Envelope message)
    {
        PeerFrameWriter.WriteFrame(_transport.Output, message, ReadOnlySpan<byte>.Empty, PeerFrameLimits.Default);
        await _transport.Output.FlushAsync(_cancellationToken);
    }

    /// <summary>The next message; a handshake message never carries a payload.</summary>
    /// <exception cref="PeerProtocolException">Not a valid frame, a frame with a payload, or the peer closed the connection.</exception>
    public ValueTask<Envelope> ReceiveAsync() => ReceiveAsync(_cancellationToken);

    private async ValueTask<Envelope> ReceiveAsync(CancellationToken cancellationToken)
    {
        var input = _transport.Input;
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken);
            var buffer = result.Buffer;
            PeerFrame frame = default;
            var complete = false;
            try
            {
                complete = PeerFrameReader.TryReadFrame(ref buffer, PeerFrameLimits.Default, out frame);
            }
            finally
            {
                // After a whole frame nothing past it counts as examined: it may be complete already.
                input.AdvanceTo(buffer.Start, complete ? buffer.Start : buffer.End);
            }

            if (complete)
            {
                if (frame.Payload is { } payload)
                {
                    payload.Dispose();
                    PeerProtocolException.Throw(PeerProtocolError.UnexpectedMessage, $"The peer sent a {frame.Header.BodyCase} with a {payload.Length}-byte payload during the handshake.");
                }

                return frame.Header;
            }

            if (result.IsCompleted)
            {
                PeerProtocolException.Throw(PeerProtocolError.TruncatedFrame, "The peer closed the connection during the handshake.");
            }
        }
    }

    /// <summary>
    /// After refusing, reads the peer's own verdict (already on its way) so that closing the socket
    /// does not reset the connection before the peer has read the refusal. Waits at most
    /// <paramref name="limit"/>: a peer that sends no verdict does not hold the refusal up.
    /// </summary>
    public async ValueTask DrainVerdictAsync(TimeSpan limit)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_cancellationToken);
        deadline.CancelAfter(limit);
        try
        {
            await ReceiveAsync(deadline.Token);
        }
        catch (Exception exception) when (exception is PeerProtocolException or OperationCanceledException or IOException)
        {
        }
    }
}

using System.IO.Pipelines;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Tests.Peer;

/// <summary>
/// The far end of a connection driven by hand: writes whatever bytes a test wants and reads
/// frames back, to see how a <see cref="PeerConnection"/> answers a misbehaving peer.
/// </summary>
internal sealed class RawPeer(IDuplexPipe pipe)
{
    public async Task SendAsync(byte[] bytes)
    {
        await pipe.Output.WriteAsync(bytes);
    }

    public Task SendAsync(Envelope header, byte[]? payload = null) => SendAsync(PeerFrameSamples.Encode(header, payload ?? []));

    /// <summary>Hangs up without a word, as a process that dies does.</summary>
    public async Task CloseAsync()
    {
        await pipe.Output.CompleteAsync();
        await pipe.Input.CompleteAsync();
    }

    /// <summary>The next frame; null when the connection closed.</summary>
    public async Task<PeerFrame?> ReceiveAsync()
    {
        using var timeout = new CancellationTokenSource(TestTimeouts.Wait);
        while (true)
        {
            var result = await pipe.Input.ReadAsync(timeout.Token);
            var buffer = result.Buffer;
            var complete = PeerFrameReader.TryReadFrame(ref buffer, PeerFrameLimits.Default, out var frame);
            pipe.Input.AdvanceTo(buffer.Start, complete ? buffer.Start : buffer.End);
            if (complete)
            {
                return frame;
            }

            if (result.IsCompleted)
            {
                return null;
            }
        }
    }

    /// <summary>The next frame other than a Ping or Pong.</summary>
    public async Task<PeerFrame?> ReceiveIgnoringKeepaliveAsync()
    {
        while (true)
        {
            var frame = await ReceiveAsync();
            if (frame is not { Header.BodyCase: Envelope.BodyOneofCase.Ping or Envelope.BodyOneofCase.Pong })
            {
                return frame;
            }
        }
    }
}

using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Tests.Peer;

/// <summary>
/// A faulty link: sits between two connections and forwards their frames byte for byte,
/// except that it flips a payload byte of the frames a test picks, as a damaged NIC or cable
/// would. Frame headers stay intact (their CRC would catch those).
/// </summary>
internal sealed class CorruptingRelay
{
    private int _forwardedWithPayload;
    private int _corrupted;

    private CorruptingRelay(Func<Envelope, bool> shouldCorrupt) => ShouldCorrupt = shouldCorrupt;

    public int ForwardedWithPayload => Volatile.Read(ref _forwardedWithPayload);

    public int Corrupted => Volatile.Read(ref _corrupted);

    private Func<Envelope, bool> ShouldCorrupt { get; }

    /// <summary>Two connections joined through relays; frames from A to B pass <paramref name="aToB"/>, the others <paramref name="bToA"/>.</summary>
    public static (ConnectionPair Pair, CorruptingRelay AToB, CorruptingRelay BToA) Join(
        IPeerRequestHandler handlerOfB, Func<Envelope, bool> aToB, Func<Envelope, bool> bToA, PeerConnectionOptions? options = null)
    {
        var (a, relayA) = DuplexPipePair.Create();
        var (relayB, b) = DuplexPipePair.Create();
        var forward = new CorruptingRelay(aToB);
        var backward = new CorruptingRelay(bToA);
        _ = forward.RunAsync(relayA.Input, relayB.Output);
        _ = backward.RunAsync(relayB.Input, relayA.Output);
        return (new ConnectionPair(a, b, DelegateHandler.AlwaysOk(), handlerOfB, options), forward, backward);
    }

    private async Task RunAsync(PipeReader source, PipeWriter destination)
    {
        while (true)
        {
            var result = await source.ReadAsync();
            var buffer = result.Buffer;
            var frames = new List<byte[]>();
            while (TryCutFrame(ref buffer, out var frame))
            {
                frames.Add(frame);
            }

            source.AdvanceTo(buffer.Start, buffer.End);
            foreach (var frame in frames)
            {
                if ((await destination.WriteAsync(frame)).IsCompleted)
                {
                    await source.CompleteAsync();
                    return;
                }
            }

            if (result.IsCompleted)
            {
                await destination.CompleteAsync();
                await source.CompleteAsync();
                return;
            }
        }
    }

    private bool TryCutFrame(ref ReadOnlySequence<byte> buffer, out byte[] frame)
    {
        frame = [];
        if (buffer.Length < PeerWire.PrefixLength)
        {
            return false;
        }

        Span<byte> prefix = stackalloc byte[PeerWire.PrefixLength];
        buffer.Slice(0, PeerWire.PrefixLength).CopyTo(prefix);
        var headerLength = (int)BinaryPrimitives.ReadUInt32BigEndian(prefix[PeerWire.HeaderLengthOffset..]);
        var payloadLength = (int)BinaryPrimitives.ReadUInt32BigEndian(prefix[PeerWire.PayloadLengthOffset..]);
        var length = PeerWire.PrefixLength + headerLength + payloadLength;
        if (buffer.Length < length)
        {
            return false;
        }

        frame = buffer.Slice(0, length).ToArray();
        buffer = buffer.Slice(length);
        if (payloadLength > 0)
        {
            Interlocked.Increment(ref _forwardedWithPayload);
            var header = Envelope.Parser.ParseFrom(frame.AsSpan(PeerWire.PrefixLength, headerLength));
            if (ShouldCorrupt(header))
            {
                Interlocked.Increment(ref _corrupted);
                frame[PeerWire.PrefixLength + headerLength + (payloadLength / 2)] ^= 0x01;
            }
        }

        return true;
    }
}

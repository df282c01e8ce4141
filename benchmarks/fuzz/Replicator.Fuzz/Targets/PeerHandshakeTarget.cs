using System.Buffers.Binary;
using System.IO.Pipelines;
using Microsoft.Extensions.Logging;
using Replicator.Protocol;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;
using Replicator.Protocol.Tests.Nbd.Support;
using Replicator.Protocol.Tests.Peer;

namespace Replicator.Fuzz.Targets;

/// <summary>
/// The peer handshake (<see cref="PeerHandshake"/>, with <see cref="PeerHelloValidator"/> judging the Hello) against
/// a peer that sends the input. The input is a list of headers, each a 16-bit length and that many bytes; each is
/// sent as a frame with a correct prefix and CRC, so the fuzzer explores the messages and not the checksum. The
/// handshake must end in a result or a <see cref="PeerHandshakeException"/> and log nothing at error level but its
/// refusals.
/// </summary>
internal sealed class PeerHandshakeTarget : IFuzzTarget
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    private static readonly Hello Local = PeerHandshake.CreateHello(
        new PeerIdentity(PeerFrameSamples.ClusterId, PeerFrameSamples.NodeB, "node-b"), PeerFrameSamples.Hello().Hello.Volumes);

    public string Name => "peer-handshake";

    public IEnumerable<(string Name, byte[] Bytes)> Seeds()
    {
        var hello = PeerFrameSamples.Hello();
        var accepted = new Envelope { HelloAccepted = new HelloAccepted() };
        var refused = new Envelope { Refused = new Refused { Reason = "no" } };
        yield return ("accepted", Headers(hello, accepted));
        yield return ("refused", Headers(hello, refused));
        yield return ("refused-first", Headers(refused));
        var otherCluster = hello.Clone();
        otherCluster.Hello.ClusterId = Guid.Empty.ToString();
        yield return ("other-cluster", Headers(otherCluster, accepted));
        var ownId = hello.Clone();
        ownId.Hello.NodeId = PeerFrameSamples.NodeB.ToString();
        yield return ("own-id", Headers(ownId, accepted));
        var twice = hello.Clone();
        twice.Hello.Volumes.Add(twice.Hello.Volumes[0]);
        yield return ("volume-twice", Headers(twice, accepted));
        yield return ("unexpected", Headers(new Envelope { Flush = new FlushRequest() }));
    }

    public void Run(byte[] input) => RunAsync(input).WaitAsync(Timeout * 3).GetAwaiter().GetResult();

    private static async Task RunAsync(byte[] input)
    {
        var fromPeer = new Pipe();
        var toPeer = new Pipe();
        var logger = new TestLogger();
        var handshake = Task.Run(() => PeerHandshake.RunAsync(new Replicator.Protocol.DuplexPipe(fromPeer.Reader, toPeer.Writer), Local, "fuzz", Timeout, logger));
        var drain = FuzzCheck.DrainAsync(toPeer.Reader);
        await fromPeer.Writer.WriteAsync(Frames(input));
        await fromPeer.Writer.CompleteAsync();
        try
        {
            await handshake;
        }
        catch (PeerHandshakeException exception) when (exception.Failure != PeerHandshakeFailure.TimedOut)
        {
            // Refused by either side, or a protocol error: what the handshake is for.
        }
        finally
        {
            await toPeer.Writer.CompleteAsync();
            await drain;
        }

        if (logger.Entries.FirstOrDefault(e => e.Level >= LogLevel.Error && e.Event.Id is not (21 or 22)) is { Message: not null } error)
        {
            throw new FuzzFailure($"the handshake logged an error: {error.Message}");
        }
    }

    /// <summary>The input's headers as frames with a right prefix and CRC; what is left over follows as it is.</summary>
    private static byte[] Frames(byte[] input)
    {
        var frames = new List<byte>();
        var rest = input.AsSpan();
        while (rest.Length >= 2)
        {
            var length = BinaryPrimitives.ReadUInt16BigEndian(rest);
            if (length > rest.Length - 2)
            {
                break;
            }

            frames.AddRange(PeerFrameSamples.EncodeRawHeader(rest.Slice(2, length)));
            rest = rest[(2 + length)..];
        }

        frames.AddRange(rest.ToArray());
        return [.. frames];
    }

    private static byte[] Headers(params Envelope[] messages)
    {
        var bytes = new List<byte>();
        foreach (var message in messages)
        {
            var header = PeerFrameSamples.ToBytes(message);
            bytes.Add((byte)(header.Length >> 8));
            bytes.Add((byte)header.Length);
            bytes.AddRange(header);
        }

        return [.. bytes];
    }
}

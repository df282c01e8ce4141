using Replicator.Protocol.Peer;
using Replicator.Protocol.Tests.Nbd.Support;
using Replicator.Protocol.Tests.Peer;

namespace Replicator.Fuzz.Targets;

/// <summary>
/// <see cref="PeerFrameReader"/> cutting frames off the input, split into pieces whose size the first byte picks.
/// It may return frames or throw <see cref="PeerProtocolException"/>, nothing else; every payload is handed back.
/// </summary>
/// <remarks>
/// The header CRC stops most mutations at the prefix, which is what the reader is for; <see cref="PeerHandshakeTarget"/>
/// frames its input with a correct CRC to fuzz what lies behind it.
/// </remarks>
internal sealed class PeerFramesTarget : IFuzzTarget
{
    public string Name => "peer-frames";

    public IEnumerable<(string Name, byte[] Bytes)> Seeds()
    {
        foreach (var name in PeerFrameSamples.AllNames)
        {
            var (header, payload) = PeerFrameSamples.Get(name);
            yield return (name.Replace(' ', '-'), [13, .. PeerFrameSamples.Encode(header, payload)]);
        }
    }

    public void Run(byte[] input)
    {
        if (input.Length == 0)
        {
            return;
        }

        var buffer = Sequences.Pieces(input[1..], Math.Max(1, (int)input[0]));
        try
        {
            while (PeerFrameReader.TryReadFrame(ref buffer, PeerFrameLimits.Default, out var frame))
            {
                frame.Payload?.Dispose();
            }
        }
        catch (PeerProtocolException)
        {
            // The protocol's own error: the connection would end here.
        }
    }
}

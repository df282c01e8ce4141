using Replicator.Protocol.Nbd;
using Replicator.Protocol.Tests.Nbd;
using Replicator.Protocol.Tests.Nbd.Support;

namespace Replicator.Fuzz.Targets;

/// <summary>
/// The pure NBD parsers: <see cref="NbdOptionParser"/> on the input as option data, and <see cref="NbdFrameReader"/>
/// cutting client flags, options and requests off it. The first byte picks the size of the pieces the rest is split
/// into (as a socket may deliver it). A parser may return a value or its error text, and the frame reader may throw
/// <see cref="NbdProtocolException"/>; nothing else.
/// </summary>
internal sealed class NbdParsersTarget : IFuzzTarget
{
    public string Name => "nbd-parsers";

    public IEnumerable<(string Name, byte[] Bytes)> Seeds()
    {
        foreach (var (name, bytes) in NbdSamples.Options)
        {
            yield return ($"option-{name}", [4, .. bytes]);
            yield return ($"data-{name}", [1, .. bytes.AsSpan(NbdWire.OptionHeaderLength)]);
        }

        foreach (var (name, bytes) in NbdSamples.Requests)
        {
            yield return ($"request-{name}", [7, .. bytes]);
        }
    }

    public void Run(byte[] input)
    {
        if (input.Length == 0)
        {
            return;
        }

        var pieceLength = Math.Max(1, (int)input[0]);
        var body = input[1..];
        var data = Sequences.Pieces(body, pieceLength);
        NbdOptionParser.ParseExportName(data, out _);
        NbdOptionParser.ParseInfo(data, out _);
        NbdOptionParser.ParseMetaContext(data, out _);

        try
        {
            var buffer = data;
            NbdFrameReader.TryReadClientFlags(ref buffer, out _);
            while (NbdFrameReader.TryReadOption(ref buffer, NbdWire.MaxOptionDataLength, out var header, out _))
            {
                if (header.Length > NbdWire.MaxOptionDataLength)
                {
                    NbdFrameReader.Skip(ref buffer, header.Length);
                }
            }

            buffer = data;
            Span<byte> payload = stackalloc byte[4096];
            while (NbdFrameReader.TryReadRequest(ref buffer, out var request))
            {
                if (request.Type == NbdWire.CmdWrite)
                {
                    NbdFrameReader.ReadPayload(ref buffer, payload[..(int)Math.Min(request.Length, (uint)payload.Length)]);
                }
            }
        }
        catch (NbdProtocolException)
        {
            // A wrong magic: the protocol's own error.
        }
    }
}

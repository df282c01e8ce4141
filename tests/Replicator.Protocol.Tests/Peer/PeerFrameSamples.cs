using System.Buffers;
using System.Buffers.Binary;
using Google.Protobuf;
using Replicator.Core.Hashing;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Tests.Peer;

/// <summary>
/// Sample frames shared by the framing tests and the fuzzing harness (<c>benchmarks/fuzz</c>, which compiles this
/// file into its seed corpus). No test framework here: the theories' data is in PeerFrameSamples.Theories.cs.
/// </summary>
internal static partial class PeerFrameSamples
{
    public static readonly Guid ClusterId = Guid.Parse("6f1c3e2a-8d4b-4c1e-9a57-2b0f6d9e4c11");
    public static readonly Guid NodeA = Guid.Parse("a0000000-0000-4000-8000-00000000000a");
    public static readonly Guid NodeB = Guid.Parse("b0000000-0000-4000-8000-00000000000b");
    public static readonly Guid Volume0 = Guid.Parse("0e7a11ce-0000-4000-8000-000000000000");

    public static byte[] Blocks(int length, int seed = 1)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    public static Envelope Write(int length, ulong offset = 4096) => new()
    {
        RequestId = 7,
        Write = new WriteRequest { VolumeId = Volume0.ToString(), Offset = offset, Length = (uint)length, Flags = (uint)IoFlag.Fua },
    };

    public static Envelope Hello() => new()
    {
        Hello = new Hello
        {
            ProtocolMajor = PeerWire.ProtocolMajor,
            ClusterId = ClusterId.ToString(),
            NodeId = NodeA.ToString(),
            NodeName = "node-a",
            Volumes =
            {
                new VolumeDescriptor
                {
                    VolumeId = Volume0.ToString(),
                    Name = "vol0",
                    Size = 1UL << 30,
                    AllocationUnit = 64 * 1024,
                    Generation = new GenerationIds { Current = 0x1234, Bitmap = 0x1200, History = { 0x1100, 0x1000 } },
                    DiskState = DiskState.UpToDate,
                },
            },
        },
    };

    /// <summary>Named sample frames: header and payload.</summary>
    public static readonly IReadOnlyList<string> AllNames = ["write 4 KiB", "write 1 byte", "flush", "hello", "empty envelope"];

    public static (Envelope Header, byte[] Payload) Get(string name) => name switch
    {
        "write 4 KiB" => (Write(4096), Blocks(4096)),
        "write 1 byte" => (Write(1), Blocks(1)),
        "flush" => (new Envelope { RequestId = 9, Flush = new FlushRequest() }, []),
        "hello" => (Hello(), []),
        "empty envelope" => (new Envelope(), []),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, null),
    };

    /// <summary>The frame's bytes exactly as <see cref="PeerFrameWriter"/> puts them on the wire.</summary>
    public static byte[] Encode(Envelope header, ReadOnlySpan<byte> payload)
    {
        var writer = new ArrayBufferWriter<byte>();
        PeerFrameWriter.SealPayload(header, payload);
        PeerFrameWriter.WriteFrame(writer, header, payload, PeerFrameLimits.Default);
        return writer.WrittenSpan.ToArray();
    }

    /// <summary>A frame whose prefix and CRC are right around arbitrary header bytes.</summary>
    public static byte[] EncodeRawHeader(ReadOnlySpan<byte> header, int payloadLength = 0)
    {
        var frame = new byte[PeerWire.PrefixLength + header.Length + payloadLength];
        BinaryPrimitives.WriteUInt32BigEndian(frame, PeerWire.FrameMagic);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(4), (uint)header.Length);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(8), (uint)payloadLength);
        header.CopyTo(frame.AsSpan(PeerWire.PrefixLength));
        var crc = Crc32C.Append(Crc32C.InitialState, frame.AsSpan(0, 12));
        crc = Crc32C.Append(crc, header);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(12), Crc32C.Complete(crc));
        return frame;
    }

    public static byte[] ToBytes(IMessage message) => message.ToByteArray();
}

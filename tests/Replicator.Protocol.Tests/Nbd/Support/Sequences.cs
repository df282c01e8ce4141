using System.Buffers;

namespace Replicator.Protocol.Tests.Nbd.Support;

/// <summary>
/// Builds multi-segment sequences, the way a socket may deliver a message. Also compiled into the fuzzing harness.
/// </summary>
internal static class Sequences
{
    /// <summary>Every byte in its own segment (Kestrel's BytePerSegmentTestSequenceFactory).</summary>
    public static ReadOnlySequence<byte> BytePerSegment(byte[] bytes) => Pieces(bytes, 1);

    /// <summary>The bytes in segments of <paramref name="pieceLength"/> (the last one may be shorter).</summary>
    public static ReadOnlySequence<byte> Pieces(byte[] bytes, int pieceLength)
    {
        if (bytes.Length == 0)
        {
            return ReadOnlySequence<byte>.Empty;
        }

        var first = new Segment(bytes.AsMemory(0, Math.Min(pieceLength, bytes.Length)), 0);
        var last = first;
        for (var i = pieceLength; i < bytes.Length; i += pieceLength)
        {
            last = last.Append(bytes.AsMemory(i, Math.Min(pieceLength, bytes.Length - i)));
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}

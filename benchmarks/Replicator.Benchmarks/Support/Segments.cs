using System.Buffers;

namespace Replicator.Benchmarks.Support;

/// <summary>Multi-segment sequences, as a pipe hands over bytes that span its 4 KiB segments.</summary>
internal static class Segments
{
    /// <summary>The same bytes cut into segments of <paramref name="segmentSize"/> (the last one shorter).</summary>
    public static ReadOnlySequence<byte> Split(byte[] data, int segmentSize)
    {
        var first = new Segment(data.AsMemory(0, Math.Min(segmentSize, data.Length)), 0);
        var last = first;
        for (var start = segmentSize; start < data.Length; start += segmentSize)
        {
            last = last.Append(data.AsMemory(start, Math.Min(segmentSize, data.Length - start)));
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

namespace Replicator.Core.Storage;

/// <summary>
/// Bytes at 64-bit offsets held in memory only where written: 64 KiB chunks taken on first write,
/// so a large sparse file costs nothing until used. Bytes never written read as zeros.
/// Not thread-safe: its owner locks.
/// </summary>
internal sealed class SparseBytes
{
    public const int ChunkSize = 1 << ChunkShift;
    private const int ChunkShift = 16;

    private readonly Dictionary<long, byte[]> _chunks = [];

    /// <summary>Bytes of memory holding data (whole chunks).</summary>
    public long AllocatedBytes => (long)_chunks.Count * ChunkSize;

    public void Read(long offset, Span<byte> destination)
    {
        while (!destination.IsEmpty)
        {
            var (index, within, count) = Next(offset, destination.Length);
            if (_chunks.TryGetValue(index, out var chunk))
            {
                chunk.AsSpan(within, count).CopyTo(destination);
            }
            else
            {
                destination[..count].Clear();
            }

            destination = destination[count..];
            offset += count;
        }
    }

    public void Write(long offset, ReadOnlySpan<byte> source)
    {
        while (!source.IsEmpty)
        {
            var (index, within, count) = Next(offset, source.Length);
            if (!_chunks.TryGetValue(index, out var chunk))
            {
                chunk = new byte[ChunkSize];
                _chunks[index] = chunk;
            }

            source[..count].CopyTo(chunk.AsSpan(within));
            source = source[count..];
            offset += count;
        }
    }

    /// <summary>Makes the range read as zeros, giving back every chunk it covers whole.</summary>
    public void Clear(long offset, long length)
    {
        var end = offset + length;
        while (offset < end)
        {
            var (index, within, count) = Next(offset, end - offset);
            if (_chunks.TryGetValue(index, out var chunk))
            {
                if (count == ChunkSize)
                {
                    _chunks.Remove(index);
                }
                else
                {
                    chunk.AsSpan(within, count).Clear();
                }
            }

            offset += count;
        }
    }

    /// <summary>The start of the first chunk at or after <paramref name="offset"/>'s chunk that holds memory, or -1.</summary>
    public long NextChunk(long offset)
    {
        var index = offset >> ChunkShift;
        var best = long.MaxValue;
        foreach (var key in _chunks.Keys)
        {
            if (key >= index && key < best)
            {
                best = key;
            }
        }

        return best == long.MaxValue ? -1 : Math.Max(offset, best << ChunkShift);
    }

    /// <summary>Whether the chunk holding <paramref name="offset"/> holds memory.</summary>
    public bool HasChunk(long offset) => _chunks.ContainsKey(offset >> ChunkShift);

    private static (long Index, int Within, int Count) Next(long offset, long remaining)
    {
        var within = (int)(offset & (ChunkSize - 1));
        return (offset >> ChunkShift, within, (int)Math.Min(remaining, ChunkSize - within));
    }
}

namespace Replicator.Core.Storage;

/// <summary>
/// A sparse in-memory store for tests and benchmarks: memory is taken in 64 KiB chunks as they
/// are first written, so a large capacity costs nothing until used.
/// </summary>
public sealed class MemoryBackingStore : IBackingStore
{
    private const int ChunkShift = 16;
    private const int ChunkSize = 1 << ChunkShift;

    private readonly Dictionary<long, byte[]> _chunks = [];
    private readonly Lock _lock = new();

    public MemoryBackingStore(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Length = length;
    }

    public long Length { get; }

    /// <summary>Number of flushes so far, for tests that check durability points.</summary>
    public int FlushCount { get; private set; }

    /// <summary>Bytes of memory holding data (whole chunks).</summary>
    public long AllocatedBytes
    {
        get
        {
            lock (_lock)
            {
                return (long)_chunks.Count * ChunkSize;
            }
        }
    }

    public void Read(long offset, Span<byte> destination)
    {
        CheckRange(offset, destination.Length);
        lock (_lock)
        {
            while (!destination.IsEmpty)
            {
                var index = offset >> ChunkShift;
                var within = (int)(offset & (ChunkSize - 1));
                var count = Math.Min(destination.Length, ChunkSize - within);
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
    }

    public void Write(long offset, ReadOnlySpan<byte> source)
    {
        CheckRange(offset, source.Length);
        lock (_lock)
        {
            while (!source.IsEmpty)
            {
                var index = offset >> ChunkShift;
                var within = (int)(offset & (ChunkSize - 1));
                var count = Math.Min(source.Length, ChunkSize - within);
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
    }

    public void Discard(long offset, long length)
    {
        CheckRange(offset, length);
        lock (_lock)
        {
            var end = offset + length;
            while (offset < end)
            {
                var index = offset >> ChunkShift;
                var within = (int)(offset & (ChunkSize - 1));
                var count = (int)Math.Min(end - offset, ChunkSize - within);
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
    }

    public void Flush()
    {
        lock (_lock)
        {
            FlushCount++;
        }
    }

    public void Dispose()
    {
    }

    private void CheckRange(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > Length - length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"[{offset}, +{length}) is outside the store of {Length} bytes");
        }
    }
}

using Replicator.Core.Storage;

namespace Replicator.Core.Tests.Pool;

/// <summary>
/// A backing store that keeps what a disk would keep across a power loss: writes and discards since the
/// last flush sit in a "page cache" that reads see, and <see cref="PowerLoss"/> keeps each of them whole,
/// drops it, or tears it (keeps a random subset of its 512-byte sectors), as a disk without a flush may.
/// </summary>
internal sealed class PowerLossStore(long length) : IBackingStore
{
    private const int Sector = 512;
    private readonly MemoryBackingStore _durable = new(length);
    private readonly List<(long Offset, byte[]? Data, long Length)> _pending = [];
    private readonly Lock _lock = new();

    public long Length => _durable.Length;

    public void Read(long offset, Span<byte> destination)
    {
        lock (_lock)
        {
            _durable.Read(offset, destination);
            foreach (var (at, data, count) in _pending)
            {
                var start = Math.Max(offset, at);
                var end = Math.Min(offset + destination.Length, at + count);
                if (end <= start)
                {
                    continue;
                }

                var target = destination.Slice((int)(start - offset), (int)(end - start));
                if (data is null)
                {
                    target.Clear();
                }
                else
                {
                    data.AsSpan((int)(start - at), (int)(end - start)).CopyTo(target);
                }
            }
        }
    }

    public void Write(long offset, ReadOnlySpan<byte> source)
    {
        lock (_lock)
        {
            _pending.Add((offset, source.ToArray(), source.Length));
        }
    }

    public void Discard(long offset, long length)
    {
        lock (_lock)
        {
            _pending.Add((offset, null, length));
        }
    }

    public void Flush()
    {
        lock (_lock)
        {
            foreach (var (at, data, count) in _pending)
            {
                Apply(at, data, count, 0, count);
            }

            _pending.Clear();
        }
    }

    /// <summary>The power goes: every unflushed write is kept, dropped or torn at random; afterwards only the disk's contents remain.</summary>
    public void PowerLoss(Random random)
    {
        lock (_lock)
        {
            foreach (var (at, data, count) in _pending)
            {
                switch (random.Next(3))
                {
                    case 0:
                        Apply(at, data, count, 0, count);
                        break;
                    case 1:
                        break;
                    default:
                        for (var sector = 0L; sector < count; sector += Sector)
                        {
                            if (random.Next(2) == 0)
                            {
                                Apply(at, data, count, sector, Math.Min(Sector, count - sector));
                            }
                        }

                        break;
                }
            }

            _pending.Clear();
        }
    }

    public void Dispose()
    {
    }

    private void Apply(long at, byte[]? data, long count, long from, long length)
    {
        if (data is null)
        {
            _durable.Discard(at + from, length);
        }
        else
        {
            _durable.Write(at + from, data.AsSpan((int)from, (int)length));
        }
    }
}

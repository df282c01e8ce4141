using System.Numerics;

namespace Replicator.Core.Pool;

/// <summary>One bit per pool extent: set when a volume maps it. Pure data.</summary>
public sealed class ExtentBitmap
{
    private ulong[] _words;

    public ExtentBitmap(long count)
    {
        Count = count;
        _words = new ulong[(count + 63) / 64];
    }

    public long Count { get; private set; }

    public long SetCount { get; private set; }

    public bool this[long index] => (_words[index >> 6] & (1UL << (int)(index & 63))) != 0;

    public void Grow(long count)
    {
        if (count < Count)
        {
            throw new ArgumentOutOfRangeException(nameof(count), "the pool cannot shrink");
        }

        Array.Resize(ref _words, (int)((count + 63) / 64));
        Count = count;
    }

    /// <summary>Sets the bit; returns false if it was already set.</summary>
    public bool Set(long index)
    {
        CheckIndex(index);
        ref var word = ref _words[index >> 6];
        var bit = 1UL << (int)(index & 63);
        if ((word & bit) != 0)
        {
            return false;
        }

        word |= bit;
        SetCount++;
        return true;
    }

    /// <summary>Clears the bit; returns false if it was already clear.</summary>
    public bool Clear(long index)
    {
        CheckIndex(index);
        ref var word = ref _words[index >> 6];
        var bit = 1UL << (int)(index & 63);
        if ((word & bit) == 0)
        {
            return false;
        }

        word &= ~bit;
        SetCount--;
        return true;
    }

    /// <summary>The first clear bit at or after <paramref name="start"/>, or -1.</summary>
    public long NextClear(long start)
    {
        for (var w = start >> 6; w < _words.Length; w++)
        {
            var free = ~_words[w];
            if (w == start >> 6)
            {
                free &= ulong.MaxValue << (int)(start & 63);
            }

            if (free != 0)
            {
                var index = (w << 6) + BitOperations.TrailingZeroCount(free);
                return index < Count ? index : -1;
            }
        }

        return -1;
    }

    /// <summary>Runs of clear bits as (first, count), in order.</summary>
    public IEnumerable<(long First, long Count)> ClearRuns()
    {
        long index = 0;
        while (index < Count)
        {
            var first = NextClear(index);
            if (first < 0)
            {
                yield break;
            }

            var end = first;
            while (end < Count && !this[end])
            {
                end++;
            }

            yield return (first, end - first);
            index = end;
        }
    }

    private void CheckIndex(long index)
    {
        if ((ulong)index >= (ulong)Count)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"the pool has {Count} extents");
        }
    }
}

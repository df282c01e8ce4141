using System.Buffers.Binary;

namespace Replicator.Core.Tests.Support.Faults;

/// <summary>
/// What one volume may hold, 512-byte sector by sector: the reference the crash and fault tests
/// check the engine against. Every change writes a value (a number; 0 is zeros) whose bytes in
/// each sector are derived from the value and the sector, so a sector read back names the value it
/// holds, and garbage or another volume's data is recognized as such.
/// </summary>
/// <remarks>
/// Per sector the model keeps the values a read may return now (one, unless a change to it failed
/// half-way) and the values a power loss may leave: the ones current at the last flush that
/// covered the sector, and every value written since (acknowledged or not, since neither is
/// durable before a flush). A flush makes the current values the only durable ones; a FUA change
/// does that for its own sectors. A flush that failed breaks that promise for what it covered (Linux
/// forgets the pages), so from then on a later flush only adds to what may survive.
/// </remarks>
internal sealed class VolumeModel
{
    public const int SectorSize = 512;

    private readonly List<Sector> _sectors = [];
    private bool _flushFailed;

    public VolumeModel(Guid id, string name, long size)
    {
        Id = id;
        Name = name;
        Resize(size);
    }

    public Guid Id { get; }

    public string Name { get; }

    public long Size => (long)_sectors.Count * SectorSize;

    /// <summary>The bytes of <paramref name="value"/> over [<paramref name="offset"/>, +<paramref name="length"/>) of a volume.</summary>
    public static byte[] Contents(int value, long offset, int length)
    {
        var bytes = new byte[length];
        if (value == 0)
        {
            return bytes;
        }

        for (var at = 0; at < length; at += SectorSize)
        {
            Fill(bytes.AsSpan(at, SectorSize), value, (offset + at) / SectorSize);
        }

        return bytes;
    }

    /// <summary>The value a sector's bytes hold, or null when they are no value's (garbage, or a sector of another place).</summary>
    public static int? ValueOf(ReadOnlySpan<byte> sector, long index)
    {
        if (!sector.ContainsAnyExcept((byte)0))
        {
            return 0;
        }

        var value = BinaryPrimitives.ReadInt32LittleEndian(sector);
        Span<byte> expected = stackalloc byte[SectorSize];
        Fill(expected, value, index);
        return value > 0 && sector.SequenceEqual(expected) ? value : null;
    }

    public void Resize(long size)
    {
        while (Size < size)
        {
            _sectors.Add(new Sector());
        }

        if (Size > size)
        {
            _sectors.RemoveRange((int)(size / SectorSize), (int)((Size - size) / SectorSize));
        }
    }

    /// <summary>A change of the range to <paramref name="value"/> was acknowledged.</summary>
    public void Applied(long offset, long length, int value, bool fua)
    {
        foreach (var sector in Range(offset, length))
        {
            sector.Current.Clear();
            sector.Current.Add(value);
            if (fua && !_flushFailed)
            {
                sector.Durable.Clear();
            }

            sector.Durable.Add(value);
        }
    }

    /// <summary>A change of the range to <paramref name="value"/> failed, or was cut off: each sector holds the old value or the new.</summary>
    public void MayHaveApplied(long offset, long length, int value)
    {
        foreach (var sector in Range(offset, length))
        {
            sector.Current.Add(value);
            sector.Durable.Add(value);
        }
    }

    public void Flushed()
    {
        foreach (var sector in _sectors)
        {
            if (!_flushFailed)
            {
                sector.Durable.Clear();
            }

            sector.Durable.UnionWith(sector.Current);
        }
    }

    public void FlushFailed() => _flushFailed = true;

    /// <summary>Whether a read now may return <paramref name="value"/> at sector <paramref name="index"/>.</summary>
    public bool MayReadNow(long index, int value) => _sectors[(int)index].Current.Contains(value);

    /// <summary>Whether a power loss may have left <paramref name="value"/> at sector <paramref name="index"/>.</summary>
    public bool MaySurvive(long index, int value) => _sectors[(int)index].Durable.Contains(value);

    /// <summary>The values a power loss may have left at sector <paramref name="index"/>, for messages.</summary>
    public string Survivors(long index) => string.Join(", ", _sectors[(int)index].Durable.Order());

    /// <summary>After a power loss and reopen, the sector holds <paramref name="value"/>, which is what is durable now.</summary>
    public void Observed(long index, int value)
    {
        var sector = _sectors[(int)index];
        sector.Current.Clear();
        sector.Current.Add(value);
        sector.Durable.Clear();
        sector.Durable.Add(value);
    }

    /// <summary>The process restarted on what survived: a failed flush no longer matters for what comes next.</summary>
    public void Restarted() => _flushFailed = false;

    private static void Fill(Span<byte> sector, int value, long index)
    {
        BinaryPrimitives.WriteInt32LittleEndian(sector, value);
        BinaryPrimitives.WriteInt64LittleEndian(sector[4..], index);
        var state = (ulong)value * 0x9E3779B97F4A7C15UL ^ (ulong)index;
        for (var i = 12; i + 8 <= sector.Length; i += 8)
        {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            BinaryPrimitives.WriteUInt64LittleEndian(sector[i..], state);
        }
    }

    private IEnumerable<Sector> Range(long offset, long length)
    {
        for (var index = offset / SectorSize; index < (offset + length) / SectorSize; index++)
        {
            yield return _sectors[(int)index];
        }
    }

    private sealed class Sector
    {
        public HashSet<int> Current { get; } = [0];

        public HashSet<int> Durable { get; } = [0];
    }
}

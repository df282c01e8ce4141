using System.Numerics;

namespace Replicator.Core.Replication;

/// <summary>
/// The activity log of one volume while both replicas are connected: a bounded set of "hot"
/// extents, recorded durably before any write to them starts, so that after either node is killed
/// in the middle of a write storm only the extents in the log can differ between the replicas.
/// Pure data, no I/O: <see cref="Begin"/> says when the log must be written, the caller writes it.
/// </summary>
/// <remarks>
/// <para>
/// <b>Use.</b> Before a write, trim or write-zeroes: <see cref="Begin"/>. On
/// <see cref="ActivityLogStatus.MustPersist"/> the caller makes the log durable up to the returned
/// sequence (one writer takes <see cref="Snapshot"/>, writes it with <see cref="ActivityLogFile.Write"/>
/// and calls <see cref="MarkDurable"/>; concurrent writers that need the same or an older sequence
/// wait for that one write: group commit). Once the write is done on both replicas, or its peer
/// half is recorded in the dirty bitmap, the caller calls <see cref="End"/>, also when it gave up
/// on a write after <see cref="Begin"/> accepted it.
/// </para>
/// <para>
/// <b>After a crash</b> the loaded set (<see cref="Restore"/>) is exactly what may differ: the node
/// marks those extents in the dirty bitmap (<see cref="ExtentRange"/>) and lets the resync compare or
/// resend them. A clean shutdown empties the log (<see cref="Clear"/>), so a clean start marks nothing.
/// Keeping the log active while the peer is away too makes the bitmap safe against power loss
/// without an fsync per write: a bitmap word still in the page cache is lost with the power, but
/// its extent is in the log, and the next start marks it again.
/// </para>
/// <para>
/// <b>Defaults.</b> 1,024 slots of 4 MiB: a hot set of 4 GiB. That bounds the work after a crash to
/// 4 GiB (seconds at 10 GbE) while the write working set of most guests (file system journals,
/// database logs, hot tables) stays inside it, so the log is written only when a cold extent is
/// first touched. DRBD's default (1,237 extents of 4 MiB, a prime its hash table wanted) is the same
/// order; we have no hash table to please. A snapshot of 1,024 extents is 8 KiB: one write and one
/// fsync per log update, however many extents changed. Guests whose writes wander over more than
/// 4 GiB should get more slots (at most <see cref="MaxSlots"/>).
/// </para>
/// <para>
/// <b>Eviction</b> picks the least recently used extent among those with no write in flight: idle
/// extents sit in a list ordered by the time their last write ended. Extents with writes in
/// flight are never evicted; when every slot has one, <see cref="Begin"/> returns
/// <see cref="ActivityLogStatus.Full"/> and changes nothing.
/// </para>
/// <para>
/// <b>An extent leaves the log only once what it covers is durable.</b> A write's data, and the
/// bitmap marks made for it, reach the page cache before the write is acknowledged, and a power
/// loss can drop them until the next fsync. While the extent is in the log that is harmless: the
/// next start marks the extent and the resync compares or resends it. Once a snapshot without the
/// extent is on disk, nothing would. So every write tells <see cref="End"/> a stamp from the
/// caller's clock of ended writes, each eviction remembers the newest stamp of its extent, and
/// <see cref="DurableStampRequired"/> tells the caller which stamp the data and the bitmap must be
/// durable up to (an fsync that started after that write ended) before it may write a snapshot.
/// </para>
/// <para>Not thread-safe: the volume serializes calls.</para>
/// </remarks>
internal sealed class ActivityLog
{
    public const int DefaultSlots = 1024;
    public const long DefaultExtentSize = 4L << 20;
    public const int MinSlots = 16;
    public const int MaxSlots = 1 << 16;
    public const long MinExtentSize = 64L << 10;
    public const long MaxExtentSize = 1L << 30;

    private readonly Dictionary<long, Entry> _active = [];

    /// <summary>Evictions not yet in a durable snapshot: the sequence that evicted each extent and the stamp of its last write.</summary>
    private readonly List<(long Sequence, long Stamp)> _pendingEvictions = [];
    private readonly int _extentShift;
    private Entry? _idleHead;
    private Entry? _idleTail;

    public ActivityLog(int slots = DefaultSlots, long extentSize = DefaultExtentSize)
    {
        CheckGeometry(slots, extentSize);
        Slots = slots;
        ExtentSize = extentSize;
        _extentShift = BitOperations.Log2((ulong)extentSize);
    }

    public int Slots { get; }

    public long ExtentSize { get; }

    /// <summary>The sequence of the latest change to the active set.</summary>
    public long Sequence { get; private set; }

    /// <summary>The newest sequence known to be on disk.</summary>
    public long DurableSequence { get; private set; }

    /// <summary>Extents in the log, in no particular order.</summary>
    public IReadOnlyCollection<long> ActiveExtents => _active.Keys;

    /// <summary>Extents with no write in flight (those eviction may take).</summary>
    public int IdleExtents { get; private set; }

    /// <summary>A log that starts from the set loaded after a restart: every extent idle, and the set durable at <paramref name="loaded"/>'s sequence.</summary>
    public static ActivityLog Restore(ActivityLogSnapshot loaded, int slots = DefaultSlots, long extentSize = DefaultExtentSize)
    {
        ArgumentNullException.ThrowIfNull(loaded);
        var log = new ActivityLog(slots, extentSize);
        if (loaded.Extents.Count > slots)
        {
            throw new ArgumentException($"the loaded activity log holds {loaded.Extents.Count} extents, more than {slots} slots", nameof(loaded));
        }

        foreach (var extent in loaded.Extents)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(extent);
            var entry = new Entry(extent) { AddedSequence = loaded.Sequence };
            if (!log._active.TryAdd(extent, entry))
            {
                throw new ArgumentException($"the loaded activity log names extent {extent} twice", nameof(loaded));
            }

            log.AppendIdle(entry);
        }

        log.Sequence = log.DurableSequence = loaded.Sequence;
        return log;
    }

    public static void CheckGeometry(int slots, long extentSize)
    {
        if (slots is < MinSlots or > MaxSlots)
        {
            throw new ArgumentOutOfRangeException(nameof(slots), slots, $"the activity log holds {MinSlots} to {MaxSlots} extents");
        }

        if (extentSize is < MinExtentSize or > MaxExtentSize || !BitOperations.IsPow2(extentSize))
        {
            throw new ArgumentOutOfRangeException(nameof(extentSize), extentSize,
                $"an activity log extent is a power of two from {MinExtentSize} to {MaxExtentSize} bytes");
        }
    }

    /// <summary>Records that a write to [<paramref name="offset"/>, +<paramref name="length"/>) is about to start.</summary>
    /// <exception cref="ArgumentException">The range spans more extents than the log has slots (split it first).</exception>
    public ActivityLogBegin Begin(long offset, long length)
    {
        if (!ExtentsOf(offset, length, out var first, out var last))
        {
            return ActivityLogBegin.Active;
        }

        if (last - first + 1 > Slots)
        {
            throw new ArgumentException($"a range of {length} bytes spans {last - first + 1} extents, more than the {Slots} slots", nameof(length));
        }

        var missing = 0;
        var idleInRange = 0;
        for (var extent = first; extent <= last; extent++)
        {
            if (!_active.TryGetValue(extent, out var entry))
            {
                missing++;
            }
            else if (entry.InFlight == 0)
            {
                idleInRange++;
            }
        }

        if (missing > Slots - _active.Count + IdleExtents - idleInRange)
        {
            return ActivityLogBegin.Full;
        }

        var required = 0L;
        for (var extent = first; extent <= last; extent++)
        {
            if (_active.TryGetValue(extent, out var entry))
            {
                Acquire(entry);
                required = Math.Max(required, entry.AddedSequence);
            }
        }

        if (missing == 0)
        {
            return required > DurableSequence
                ? new ActivityLogBegin(ActivityLogStatus.MustPersist, required, null)
                : ActivityLogBegin.Active;
        }

        var sequence = ++Sequence;
        var added = new List<long>(missing);
        var evicted = new List<long>();
        for (var extent = first; extent <= last; extent++)
        {
            if (_active.ContainsKey(extent))
            {
                continue;
            }

            if (_active.Count == Slots)
            {
                var victim = _idleHead!;
                RemoveIdle(victim);
                _active.Remove(victim.Extent);
                evicted.Add(victim.Extent);
                NoteEviction(sequence, victim);
            }

            _active.Add(extent, new Entry(extent) { AddedSequence = sequence, InFlight = 1 });
            added.Add(extent);
        }

        return new ActivityLogBegin(ActivityLogStatus.MustPersist, sequence, new ActivityLogUpdate(sequence, added, evicted));
    }

    /// <summary>Records that the write <see cref="Begin"/> accepted for this range is over.</summary>
    /// <param name="stamp">
    /// The caller's count of ended writes, this one included (never decreasing): an fsync of the data and
    /// the bitmap that starts after this call covers the write (see <see cref="DurableStampRequired"/>).
    /// </param>
    /// <returns>Whether an extent became idle, so that a write refused with <see cref="ActivityLogStatus.Full"/> may now succeed.</returns>
    public bool End(long offset, long length, long stamp)
    {
        if (!ExtentsOf(offset, length, out var first, out var last))
        {
            return false;
        }

        for (var extent = first; extent <= last; extent++)
        {
            if (!_active.TryGetValue(extent, out var entry) || entry.InFlight == 0)
            {
                throw new InvalidOperationException($"extent {extent} has no write in flight to end");
            }
        }

        var freed = false;
        for (var extent = first; extent <= last; extent++)
        {
            var entry = _active[extent];
            entry.LastStamp = Math.Max(entry.LastStamp, stamp);
            if (--entry.InFlight == 0)
            {
                AppendIdle(entry);
                freed = true;
            }
        }

        return freed;
    }

    /// <summary>
    /// Empties the log for a clean shutdown, so the next start has nothing to mark dirty. Every write
    /// must have ended. Returns the change to persist (as for <see cref="ActivityLogStatus.MustPersist"/>),
    /// or null when the log was already empty.
    /// </summary>
    public ActivityLogUpdate? Clear()
    {
        if (IdleExtents != _active.Count)
        {
            throw new InvalidOperationException($"{_active.Count - IdleExtents} extents still have writes in flight");
        }

        if (_active.Count == 0)
        {
            return null;
        }

        var evicted = Snapshot().Extents;
        var sequence = ++Sequence;
        foreach (var entry in _active.Values)
        {
            NoteEviction(sequence, entry);
        }

        _active.Clear();
        _idleHead = _idleTail = null;
        IdleExtents = 0;
        return new ActivityLogUpdate(sequence, [], evicted);
    }

    /// <summary>
    /// The stamp (see <see cref="End"/>) up to which the data and the bitmap must be durable before a
    /// snapshot of <paramref name="sequence"/> may be written: the newest write to any extent it no
    /// longer holds. 0 when nothing was evicted since the last durable snapshot.
    /// </summary>
    public long DurableStampRequired(long sequence)
    {
        var required = 0L;
        foreach (var (evictedAt, stamp) in _pendingEvictions)
        {
            if (evictedAt <= sequence)
            {
                required = Math.Max(required, stamp);
            }
        }

        return required;
    }

    /// <summary>The whole active set now, to be written by <see cref="ActivityLogFile.Write"/>.</summary>
    public ActivityLogSnapshot Snapshot()
    {
        var extents = _active.Keys.ToArray();
        Array.Sort(extents);
        return new ActivityLogSnapshot(Sequence, extents);
    }

    /// <summary>Records that a snapshot of <paramref name="sequence"/> is on disk.</summary>
    public void MarkDurable(long sequence)
    {
        if (sequence > Sequence)
        {
            throw new ArgumentOutOfRangeException(nameof(sequence), sequence, $"the log has only reached sequence {Sequence}");
        }

        DurableSequence = Math.Max(DurableSequence, sequence);
        _pendingEvictions.RemoveAll(e => e.Sequence <= DurableSequence);
    }

    /// <summary>The byte range of <paramref name="extent"/> (the caller clips it at the volume's end).</summary>
    public (long Offset, long Length) ExtentRange(long extent) => (extent << _extentShift, ExtentSize);

    private bool ExtentsOf(long offset, long length, out long first, out long last)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (offset > long.MaxValue - length)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, "the range overflows");
        }

        first = offset >> _extentShift;
        last = (offset + length - 1) >> _extentShift;
        return length > 0;
    }

    private void NoteEviction(long sequence, Entry victim)
    {
        if (victim.LastStamp > 0)
        {
            _pendingEvictions.Add((sequence, victim.LastStamp));
        }
    }

    private void Acquire(Entry entry)
    {
        if (entry.InFlight++ == 0)
        {
            RemoveIdle(entry);
        }
    }

    private void AppendIdle(Entry entry)
    {
        entry.Previous = _idleTail;
        entry.Next = null;
        if (_idleTail is null)
        {
            _idleHead = entry;
        }
        else
        {
            _idleTail.Next = entry;
        }

        _idleTail = entry;
        IdleExtents++;
    }

    private void RemoveIdle(Entry entry)
    {
        if (entry.Previous is null)
        {
            _idleHead = entry.Next;
        }
        else
        {
            entry.Previous.Next = entry.Next;
        }

        if (entry.Next is null)
        {
            _idleTail = entry.Previous;
        }
        else
        {
            entry.Next.Previous = entry.Previous;
        }

        entry.Previous = entry.Next = null;
        IdleExtents--;
    }

    private sealed class Entry(long extent)
    {
        public long Extent { get; } = extent;

        public long AddedSequence { get; set; }

        public int InFlight { get; set; }

        /// <summary>The stamp of the newest write to the extent that ended (0: none since the log was restored).</summary>
        public long LastStamp { get; set; }

        public Entry? Previous { get; set; }

        public Entry? Next { get; set; }
    }
}

namespace Replicator.Core.Metadata;

public enum JournalRecordType : byte
{
    VolumeCreated = 1,
    VolumeDeleted = 2,
    VolumeResized = 3,
    UnitMapped = 4,
    UnitUnmapped = 5,
    PoolFileAdded = 6,

    /// <summary>Changes nothing: says the journal's first <see cref="JournalRecord.SyncedLength"/> bytes were synced before it was written.</summary>
    SyncMark = 7,
}

/// <summary>
/// One change to the pool's metadata. A flat union: which fields mean something depends on
/// <see cref="Type"/> (see the factory methods).
/// </summary>
public readonly record struct JournalRecord(
    JournalRecordType Type,
    uint Volume,
    long A,
    long B,
    Guid Id = default,
    string? Name = null)
{
    public static JournalRecord VolumeCreated(uint volume, Guid id, string name, long size) =>
        new(JournalRecordType.VolumeCreated, volume, size, 0, id, name);

    public static JournalRecord VolumeDeleted(uint volume) => new(JournalRecordType.VolumeDeleted, volume, 0, 0);

    public static JournalRecord VolumeResized(uint volume, long size) => new(JournalRecordType.VolumeResized, volume, size, 0);

    public static JournalRecord UnitMapped(uint volume, long unit, long extent) => new(JournalRecordType.UnitMapped, volume, unit, extent);

    public static JournalRecord UnitUnmapped(uint volume, long unit) => new(JournalRecordType.UnitUnmapped, volume, unit, 0);

    public static JournalRecord PoolFileAdded(long capacity) => new(JournalRecordType.PoolFileAdded, 0, capacity, 0);

    public static JournalRecord SyncMark(long syncedLength) => new(JournalRecordType.SyncMark, 0, syncedLength, 0);

    public long Size => A;

    public long Unit => A;

    public long Extent => B;

    public long Capacity => A;

    public long SyncedLength => A;
}

using System.Buffers.Binary;
using Replicator.Core.Hashing;
using Replicator.Core.Storage;

namespace Replicator.Core.Replication;

/// <summary>
/// The activity log on disk: two record slots, A and B, each able to hold the whole active set.
/// Every update writes the full set into the slot not holding the newest record, with one
/// positional write and one fsync; a crash mid-write tears only that slot, and the other still
/// holds the previous set, which is a superset of every extent with a write in flight (no write
/// starts before the record naming its extent is durable).
/// </summary>
/// <remarks>
/// <code>
/// offset 0:                 "RPLALOG\0"  u32 version  u32 slots  i64 extent size  u32 crc32c        (written once, at creation)
/// 4096, 4096 + slot bytes:  "ALR1"  u64 sequence  u32 count  { i64 extent }×count  u32 crc32c of all before it
/// </code>
/// Little-endian. Slot bytes are the largest record rounded up to 4 KiB. Loading takes the intact
/// record with the higher sequence; the next write goes to the other slot. Not thread-safe: one
/// writer at a time (the volume's activity log writer).
/// </remarks>
internal sealed class ActivityLogFile : IDisposable
{
    private const int Version = 1;
    private const int HeaderBytes = 28;
    private const int SlotsOffset = 4096;
    private const int RecordHeaderBytes = 16;
    private static ReadOnlySpan<byte> Magic => "RPLALOG\0"u8;
    private static ReadOnlySpan<byte> RecordMagic => "ALR1"u8;

    private readonly IStorageFile _file;
    private readonly byte[] _buffer;
    private int _nextSlot;
    private long _lastWritten;

    private ActivityLogFile(IStorageFile file, int slots, long extentSize, int nextSlot, long lastWritten)
    {
        _file = file;
        Slots = slots;
        ExtentSize = extentSize;
        _buffer = new byte[SlotBytes(slots)];
        _nextSlot = nextSlot;
        _lastWritten = lastWritten;
    }

    public string Path => _file.Path;

    public int Slots { get; }

    public long ExtentSize { get; }

    /// <summary>Creates the file holding an empty log at sequence 0, atomically and durably.</summary>
    public static void Create(IFileSystem files, string path, int slots, long extentSize)
    {
        ActivityLog.CheckGeometry(slots, extentSize);
        if (files.FileExists(path))
        {
            throw new IOException($"an activity log already exists at {path}");
        }

        var bytes = new byte[SlotsOffset + SlotBytes(slots)];
        Magic.CopyTo(bytes);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8), Version);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(12), slots);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(16), extentSize);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(24), Crc32C.Compute(bytes.AsSpan(0, 24)));
        EncodeRecord(new ActivityLogSnapshot(0, []), bytes.AsSpan(SlotsOffset));
        files.WriteAtomically(path, bytes);
    }

    /// <summary>Opens the log and returns the newest intact record in <paramref name="loaded"/>.</summary>
    /// <exception cref="InvalidDataException">The header is damaged, or neither slot holds an intact record.</exception>
    public static ActivityLogFile Open(IFileSystem files, string path, out ActivityLogSnapshot loaded)
    {
        var file = files.OpenFile(path, FileOpenMode.Open);
        try
        {
            var header = new byte[HeaderBytes];
            if (file.Read(0, header) < HeaderBytes || !header.AsSpan().StartsWith(Magic)
                || BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(24)) != Crc32C.Compute(header.AsSpan(0, 24)))
            {
                throw new StorageDamagedException($"{path}: the activity log header is damaged (it is written once, at creation, and synced)");
            }

            var version = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(8));
            if (version != Version)
            {
                throw new InvalidDataException($"{path}: activity log version {version} is not supported (this build reads {Version})");
            }

            var slots = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(12));
            var extentSize = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(16));
            try
            {
                ActivityLog.CheckGeometry(slots, extentSize);
            }
            catch (ArgumentOutOfRangeException e)
            {
                throw new InvalidDataException($"{path}: the activity log header names an impossible geometry: {e.Message}", e);
            }

            var slotBytes = SlotBytes(slots);
            var buffer = new byte[slotBytes];
            var a = ReadRecord(file, SlotsOffset, buffer, slots);
            var b = ReadRecord(file, SlotsOffset + slotBytes, buffer, slots);
            var (record, slot) = (a, b) switch
            {
                (null, null) => throw new StorageDamagedException(
                    $"{path}: neither activity log slot holds an intact record (a crash tears at most the one being written): without it this node cannot tell which extents may differ from its peer"),
                (not null, null) => (a, 0),
                (null, not null) => (b, 1),
                _ => a.Sequence >= b.Sequence ? (a, 0) : (b, 1),
            };

            loaded = record;
            return new ActivityLogFile(file, slots, extentSize, 1 - slot, record.Sequence);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Writes <paramref name="snapshot"/> into the next slot and syncs it. Returns false, writing
    /// nothing, when a snapshot at least as new is already on disk.
    /// </summary>
    public bool Write(ActivityLogSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        if (snapshot.Extents.Count > Slots)
        {
            throw new ArgumentException($"the snapshot holds {snapshot.Extents.Count} extents, the file {Slots} slots", nameof(snapshot));
        }

        if (snapshot.Sequence <= _lastWritten)
        {
            return false;
        }

        var length = EncodeRecord(snapshot, _buffer);
        _file.Write(SlotsOffset + (long)_nextSlot * _buffer.Length, _buffer.AsSpan(0, length));
        _file.Flush();
        _nextSlot = 1 - _nextSlot;
        _lastWritten = snapshot.Sequence;
        return true;
    }

    public void Dispose() => _file.Dispose();

    private static int SlotBytes(int slots) => (RecordHeaderBytes + slots * sizeof(long) + sizeof(uint) + 4095) & ~4095;

    private static int EncodeRecord(ActivityLogSnapshot snapshot, Span<byte> destination)
    {
        RecordMagic.CopyTo(destination);
        BinaryPrimitives.WriteInt64LittleEndian(destination[4..], snapshot.Sequence);
        BinaryPrimitives.WriteInt32LittleEndian(destination[12..], snapshot.Extents.Count);
        var position = RecordHeaderBytes;
        foreach (var extent in snapshot.Extents)
        {
            BinaryPrimitives.WriteInt64LittleEndian(destination[position..], extent);
            position += sizeof(long);
        }

        BinaryPrimitives.WriteUInt32LittleEndian(destination[position..], Crc32C.Compute(destination[..position]));
        return position + sizeof(uint);
    }

    private static ActivityLogSnapshot? ReadRecord(IStorageFile file, long offset, byte[] buffer, int slots)
    {
        var read = file.Read(offset, buffer);
        var record = buffer.AsSpan(0, read);
        if (read < RecordHeaderBytes + sizeof(uint) || !record.StartsWith(RecordMagic))
        {
            return null;
        }

        var count = BinaryPrimitives.ReadInt32LittleEndian(record[12..]);
        if (count < 0 || count > slots)
        {
            return null;
        }

        var end = RecordHeaderBytes + count * sizeof(long);
        if (read < end + sizeof(uint) || BinaryPrimitives.ReadUInt32LittleEndian(record[end..]) != Crc32C.Compute(record[..end]))
        {
            return null;
        }

        var extents = new long[count];
        for (var i = 0; i < count; i++)
        {
            extents[i] = BinaryPrimitives.ReadInt64LittleEndian(record[(RecordHeaderBytes + i * sizeof(long))..]);
        }

        return new ActivityLogSnapshot(BinaryPrimitives.ReadInt64LittleEndian(record[4..]), extents);
    }
}

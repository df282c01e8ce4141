using System.Buffers.Binary;
using System.Text;
using Replicator.Core.Hashing;

namespace Replicator.Core.Metadata;

/// <summary>
/// Encodes and decodes journal records. Pure functions over spans.
/// </summary>
/// <remarks>
/// <code>
///  0        4        8                16    17
///  +--------+--------+----------------+-----+------------------+
///  | length | crc32c | sequence (u64) | type| body (per type)  |
///  +--------+--------+----------------+-----+------------------+
///  length = bytes from sequence to the end of body; crc32c covers the same bytes.
///  All integers little-endian.
/// </code>
/// A record whose length is implausible or whose CRC does not match ends the valid journal. What
/// follows it decides whether that is a torn tail (dropped, never applied) or damage (the pool is
/// not opened): see <see cref="MetadataJournal.Replay"/>.
/// </remarks>
public static class JournalCodec
{
    public const int PrefixSize = 8;
    public const int MaxRecordLength = 1024;
    private const int MinRecordLength = sizeof(ulong) + 1;

    public static int MaxEncodedSize(in JournalRecord record) =>
        PrefixSize + MinRecordLength + 4 + 16 + 8 + 2 + Encoding.UTF8.GetMaxByteCount(record.Name?.Length ?? 0);

    /// <summary>Encodes one record into <paramref name="destination"/> and returns the bytes written.</summary>
    public static int Encode(in JournalRecord record, ulong sequence, Span<byte> destination)
    {
        var body = destination[PrefixSize..];
        BinaryPrimitives.WriteUInt64LittleEndian(body, sequence);
        body[8] = (byte)record.Type;
        var fields = body[MinRecordLength..];
        var n = 0;
        switch (record.Type)
        {
            case JournalRecordType.VolumeCreated:
                BinaryPrimitives.WriteUInt32LittleEndian(fields, record.Volume);
                record.Id.TryWriteBytes(fields[4..]);
                BinaryPrimitives.WriteInt64LittleEndian(fields[20..], record.Size);
                var nameLength = Encoding.UTF8.GetBytes(record.Name ?? string.Empty, fields[30..]);
                BinaryPrimitives.WriteUInt16LittleEndian(fields[28..], checked((ushort)nameLength));
                n = 30 + nameLength;
                break;
            case JournalRecordType.VolumeDeleted:
                BinaryPrimitives.WriteUInt32LittleEndian(fields, record.Volume);
                n = 4;
                break;
            case JournalRecordType.VolumeResized:
            case JournalRecordType.UnitUnmapped:
                BinaryPrimitives.WriteUInt32LittleEndian(fields, record.Volume);
                BinaryPrimitives.WriteInt64LittleEndian(fields[4..], record.A);
                n = 12;
                break;
            case JournalRecordType.UnitMapped:
                BinaryPrimitives.WriteUInt32LittleEndian(fields, record.Volume);
                BinaryPrimitives.WriteInt64LittleEndian(fields[4..], record.Unit);
                BinaryPrimitives.WriteInt64LittleEndian(fields[12..], record.Extent);
                n = 20;
                break;
            case JournalRecordType.PoolFileAdded:
            case JournalRecordType.SyncMark:
                BinaryPrimitives.WriteInt64LittleEndian(fields, record.A);
                n = 8;
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(record), record.Type, "unknown journal record type");
        }

        var length = MinRecordLength + n;
        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)length);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[4..], Crc32C.Compute(body[..length]));
        return PrefixSize + length;
    }

    /// <summary>
    /// Decodes the record at the start of <paramref name="source"/>. Returns false, with a reason,
    /// when the bytes do not hold a complete, intact record (a torn or corrupt tail).
    /// </summary>
    public static bool TryDecode(ReadOnlySpan<byte> source, out JournalRecord record, out ulong sequence, out int consumed, out string? problem)
    {
        record = default;
        sequence = 0;
        consumed = 0;
        if (source.Length < PrefixSize)
        {
            problem = source.IsEmpty ? null : $"{source.Length} bytes left, too few for a record header";
            return false;
        }

        var length = BinaryPrimitives.ReadUInt32LittleEndian(source);
        if (length < MinRecordLength || length > MaxRecordLength)
        {
            problem = $"record length {length} is implausible";
            return false;
        }

        if (source.Length < PrefixSize + length)
        {
            problem = $"record of {length} bytes is cut short after {source.Length - PrefixSize}";
            return false;
        }

        var body = source.Slice(PrefixSize, (int)length);
        if (Crc32C.Compute(body) != BinaryPrimitives.ReadUInt32LittleEndian(source[4..]))
        {
            problem = "record checksum does not match";
            return false;
        }

        sequence = BinaryPrimitives.ReadUInt64LittleEndian(body);
        var type = (JournalRecordType)body[8];
        var fields = body[MinRecordLength..];
        problem = null;
        try
        {
            record = type switch
            {
                JournalRecordType.VolumeCreated => JournalRecord.VolumeCreated(
                    BinaryPrimitives.ReadUInt32LittleEndian(fields),
                    new Guid(fields.Slice(4, 16)),
                    Encoding.UTF8.GetString(fields.Slice(30, BinaryPrimitives.ReadUInt16LittleEndian(fields[28..]))),
                    BinaryPrimitives.ReadInt64LittleEndian(fields[20..])),
                JournalRecordType.VolumeDeleted => JournalRecord.VolumeDeleted(BinaryPrimitives.ReadUInt32LittleEndian(fields)),
                JournalRecordType.VolumeResized => JournalRecord.VolumeResized(
                    BinaryPrimitives.ReadUInt32LittleEndian(fields), BinaryPrimitives.ReadInt64LittleEndian(fields[4..])),
                JournalRecordType.UnitMapped => JournalRecord.UnitMapped(
                    BinaryPrimitives.ReadUInt32LittleEndian(fields),
                    BinaryPrimitives.ReadInt64LittleEndian(fields[4..]),
                    BinaryPrimitives.ReadInt64LittleEndian(fields[12..])),
                JournalRecordType.UnitUnmapped => JournalRecord.UnitUnmapped(
                    BinaryPrimitives.ReadUInt32LittleEndian(fields), BinaryPrimitives.ReadInt64LittleEndian(fields[4..])),
                JournalRecordType.PoolFileAdded => JournalRecord.PoolFileAdded(BinaryPrimitives.ReadInt64LittleEndian(fields)),
                JournalRecordType.SyncMark => JournalRecord.SyncMark(BinaryPrimitives.ReadInt64LittleEndian(fields)),
                _ => throw new InvalidDataException($"unknown record type {(byte)type}"),
            };
        }
        catch (Exception e) when (e is ArgumentOutOfRangeException or InvalidDataException or ArgumentException)
        {
            // The CRC matched, so this was written by a newer or broken writer, not torn.
            throw new InvalidDataException($"journal record {sequence} of type {(byte)type} cannot be decoded: {e.Message}", e);
        }

        consumed = PrefixSize + (int)length;
        return true;
    }
}

using System.Buffers.Binary;
using System.Text;
using Replicator.Core.Hashing;

namespace Replicator.Core.Metadata;

/// <summary>
/// The pool's whole metadata at one journal sequence number, so the journal can be cut short.
/// </summary>
/// <remarks>
/// <code>
/// "RPLPOOL\0"  u32 version  u32 extentSize  u64 lastSequence  u64 journalGeneration  u32 nextLocalId
/// u32 fileCount  { i64 capacity }*
/// u32 volumeCount { u32 localId  guid(16)  i64 size  u16 nameLength  name  i64 mappings  { i64 unit  u32 extent }* }*
/// u32 crc32c of all the bytes before it
/// </code>
/// Little-endian. The file is written whole to a temporary name, synced and renamed over the
/// old one, so a crash leaves either the old snapshot or the new one, never a mix.
/// </remarks>
public static class PoolSnapshot
{
    private const int Version = 1;
    private static ReadOnlySpan<byte> Magic => "RPLPOOL\0"u8;

    public static byte[] Serialize(PoolState state, ulong journalGeneration)
    {
        using var stream = new MemoryStream();
        using (var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(Magic);
            w.Write(Version);
            w.Write(state.ExtentSize);
            w.Write(state.LastSequence);
            w.Write(journalGeneration);
            w.Write(state.NextLocalId);
            w.Write(state.FileCapacities.Count);
            foreach (var capacity in state.FileCapacities)
            {
                w.Write(capacity);
            }

            w.Write(state.Volumes.Count);
            foreach (var volume in state.Volumes.OrderBy(v => v.LocalId))
            {
                w.Write(volume.LocalId);
                w.Write(volume.Id.ToByteArray());
                w.Write(volume.Size);
                var name = Encoding.UTF8.GetBytes(volume.Name);
                w.Write((ushort)name.Length);
                w.Write(name);
                w.Write(volume.Map.MappedCount);
                foreach (var (unit, extent) in volume.Map.Entries())
                {
                    w.Write(unit);
                    w.Write((uint)extent);
                }
            }
        }

        var crc = Crc32C.Compute(stream.GetBuffer().AsSpan(0, (int)stream.Length));
        Span<byte> trailer = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(trailer, crc);
        stream.Write(trailer);
        return stream.ToArray();
    }

    /// <summary>Parses a snapshot; throws <see cref="InvalidDataException"/> saying what is wrong with it.</summary>
    public static PoolState Deserialize(ReadOnlySpan<byte> bytes, out ulong journalGeneration)
    {
        if (bytes.Length < Magic.Length + 4 || !bytes.StartsWith(Magic))
        {
            throw new InvalidDataException("not a pool metadata snapshot (bad magic)");
        }

        var expected = BinaryPrimitives.ReadUInt32LittleEndian(bytes[^4..]);
        if (Crc32C.Compute(bytes[..^4]) != expected)
        {
            throw new InvalidDataException("pool metadata snapshot checksum does not match: the file is damaged");
        }

        using var stream = new MemoryStream(bytes[Magic.Length..^4].ToArray());
        using var r = new BinaryReader(stream, Encoding.UTF8);
        try
        {
            var version = r.ReadInt32();
            if (version != Version)
            {
                throw new InvalidDataException($"pool metadata snapshot version {version} is not supported (this build reads {Version})");
            }

            var state = new PoolState(r.ReadInt32());
            var lastSequence = r.ReadUInt64();
            journalGeneration = r.ReadUInt64();
            var nextLocalId = r.ReadUInt32();
            var files = r.ReadInt32();
            for (var i = 0; i < files; i++)
            {
                state.Apply(JournalRecord.PoolFileAdded(r.ReadInt64()));
            }

            var volumes = r.ReadInt32();
            for (var i = 0; i < volumes; i++)
            {
                var localId = r.ReadUInt32();
                var id = new Guid(r.ReadBytes(16));
                var size = r.ReadInt64();
                var name = Encoding.UTF8.GetString(r.ReadBytes(r.ReadUInt16()));
                state.Apply(JournalRecord.VolumeCreated(localId, id, name, size));
                var mappings = r.ReadInt64();
                for (long m = 0; m < mappings; m++)
                {
                    var unit = r.ReadInt64();
                    state.Apply(JournalRecord.UnitMapped(localId, unit, r.ReadUInt32()));
                }
            }

            if (stream.Position != stream.Length)
            {
                throw new InvalidDataException("pool metadata snapshot has trailing bytes");
            }

            state.LastSequence = lastSequence;
            state.RaiseNextLocalId(nextLocalId);
            return state;
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException("pool metadata snapshot is shorter than its contents say", e);
        }
    }
}

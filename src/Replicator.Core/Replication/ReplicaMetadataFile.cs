using System.Buffers.Binary;
using Replicator.Core.Hashing;
using Replicator.Core.Storage;

namespace Replicator.Core.Replication;

/// <summary>
/// <see cref="ReplicaMetadata"/> on disk, written whole and atomically (temporary file, fsync,
/// rename, directory fsync), so a crash leaves the old metadata or the new, never a mix.
/// </summary>
/// <remarks>
/// <code>
/// "RPLREPL\0"  u32 version  guid volume  guid peer node  u64 current  u64 bitmap  u64 history0  u64 history1
/// u32 disk state  u32 flags  i32 bitmap granularity  i32 activity log slots  i64 activity log extent size
/// u32 crc32c of all the bytes before it
/// </code>
/// Little-endian, 104 bytes.
/// </remarks>
internal static class ReplicaMetadataFile
{
    public const int Length = 104;
    private const int Version = 1;
    private static ReadOnlySpan<byte> Magic => "RPLREPL\0"u8;

    public static void Write(IFileSystem files, string path, ReplicaMetadata metadata) => files.WriteAtomically(path, Serialize(metadata));

    /// <exception cref="InvalidDataException">The file is damaged or not replica metadata.</exception>
    public static ReplicaMetadata Read(IFileSystem files, string path)
    {
        try
        {
            return Deserialize(files.ReadAllBytes(path));
        }
        catch (InvalidDataException e)
        {
            // Written whole by rename: a crash leaves the old file or the new one, so a bad one is damage, not a crash.
            throw new StorageDamagedException($"{path}: {e.Message}; without it this node cannot tell which data set its replica holds", e);
        }
    }

    public static byte[] Serialize(ReplicaMetadata metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        var bytes = new byte[Length];
        var span = bytes.AsSpan();
        Magic.CopyTo(span);
        BinaryPrimitives.WriteInt32LittleEndian(span[8..], Version);
        metadata.VolumeId.TryWriteBytes(span[12..]);
        metadata.PeerNodeId.TryWriteBytes(span[28..]);
        BinaryPrimitives.WriteUInt64LittleEndian(span[44..], metadata.Generation.Current);
        BinaryPrimitives.WriteUInt64LittleEndian(span[52..], metadata.Generation.Bitmap);
        BinaryPrimitives.WriteUInt64LittleEndian(span[60..], metadata.Generation.History0);
        BinaryPrimitives.WriteUInt64LittleEndian(span[68..], metadata.Generation.History1);
        BinaryPrimitives.WriteUInt32LittleEndian(span[76..], (uint)metadata.DiskState);
        BinaryPrimitives.WriteUInt32LittleEndian(span[80..], (uint)metadata.Flags);
        BinaryPrimitives.WriteInt32LittleEndian(span[84..], metadata.BitmapGranularity);
        BinaryPrimitives.WriteInt32LittleEndian(span[88..], metadata.ActivityLogSlots);
        BinaryPrimitives.WriteInt64LittleEndian(span[92..], metadata.ActivityLogExtentSize);
        BinaryPrimitives.WriteUInt32LittleEndian(span[100..], Crc32C.Compute(span[..100]));
        return bytes;
    }

    /// <exception cref="InvalidDataException">Says what is wrong with the bytes.</exception>
    public static ReplicaMetadata Deserialize(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < Magic.Length || !bytes.StartsWith(Magic))
        {
            throw new InvalidDataException("not replica metadata (bad magic)");
        }

        if (bytes.Length != Length)
        {
            throw new InvalidDataException($"replica metadata is {bytes.Length} bytes, expected {Length}: the file was cut or extended");
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(bytes[100..]) != Crc32C.Compute(bytes[..100]))
        {
            throw new InvalidDataException("replica metadata checksum does not match: the file is damaged");
        }

        var version = BinaryPrimitives.ReadInt32LittleEndian(bytes[8..]);
        if (version != Version)
        {
            throw new InvalidDataException($"replica metadata version {version} is not supported (this build reads {Version})");
        }

        var disk = (ReplicaDiskState)BinaryPrimitives.ReadUInt32LittleEndian(bytes[76..]);
        var flags = (ReplicaFlags)BinaryPrimitives.ReadUInt32LittleEndian(bytes[80..]);
        const ReplicaFlags known = ReplicaFlags.ConnectedAndUpToDate | ReplicaFlags.CrashedWhileConnected | ReplicaFlags.FullSyncRequired;
        if (!Enum.IsDefined(disk) || (flags & ~known) != 0)
        {
            throw new InvalidDataException($"replica metadata holds an unknown disk state {(uint)disk} or flags 0x{(uint)flags:X}");
        }

        var metadata = new ReplicaMetadata(
            new Guid(bytes.Slice(12, 16)),
            new Guid(bytes.Slice(28, 16)),
            new GenerationIds(
                BinaryPrimitives.ReadUInt64LittleEndian(bytes[44..]),
                BinaryPrimitives.ReadUInt64LittleEndian(bytes[52..]),
                BinaryPrimitives.ReadUInt64LittleEndian(bytes[60..]),
                BinaryPrimitives.ReadUInt64LittleEndian(bytes[68..])),
            disk,
            flags,
            BinaryPrimitives.ReadInt32LittleEndian(bytes[84..]),
            BinaryPrimitives.ReadInt32LittleEndian(bytes[88..]),
            BinaryPrimitives.ReadInt64LittleEndian(bytes[92..]));
        try
        {
            DirtyBitmap.CheckGranularity(metadata.BitmapGranularity);
            ActivityLog.CheckGeometry(metadata.ActivityLogSlots, metadata.ActivityLogExtentSize);
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new InvalidDataException($"replica metadata names an impossible geometry: {e.Message}", e);
        }

        return metadata;
    }
}

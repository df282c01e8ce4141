using System.Buffers.Binary;
using Replicator.Core.Hashing;
using Replicator.Core.Storage;

namespace Replicator.Core.Pool;

/// <summary>
/// The block checksums of one pool data file, in a file beside it (<c>data-NNN.sums</c>): one 8-byte
/// slot per 4 KiB block of the data file, at a fixed place, so an extent carries its checksums with it
/// wherever it is mapped, and freeing it clears them with it.
/// </summary>
/// <remarks>
/// <code>
/// offset 0:     "RPLSUMS\0"  u32 version  u32 block size (4096)  i64 data file capacity  u32 crc32c of the 24 bytes before it
/// offset 4096:  slot i (u64, little-endian) = checksum of bytes [4096 i, 4096 i + 4096) of the data file (see BlockChecksum)
/// </code>
/// The file is sparse: slots of blocks never written are holes and read as 0 (<see cref="BlockChecksum.Unwritten"/>).
/// The header is written once, at creation, and synced before the pool uses the file.
/// <para><b>Ordering.</b> A write stores the data, then the checksums, each with one positional
/// write into the page cache (both survive a kill -9 once the write returns); the pool's flush syncs
/// the data files, then the checksum files, then the journal, so a flushed or FUA write is durable
/// with its checksum. A write not yet flushed may, after a power loss, leave a block whose data and
/// checksum disagree; every such block lies in an extent the activity log names, which the node
/// checks at start (<c>ThinVolume.RecheckAfterCrash</c>). Not thread-safe for overlapping slots: the
/// pool's <see cref="BlockGuard"/> orders writers of the same block.</para>
/// </remarks>
internal sealed class BlockChecksumStore : IDisposable
{
    public const int HeaderBytes = 4096;
    private const int Version = 1;
    private const int HeaderLength = 28;
    private static ReadOnlySpan<byte> Magic => "RPLSUMS\0"u8;

    private readonly IBackingStore _store;

    private BlockChecksumStore(IBackingStore store, long dataCapacity)
    {
        _store = store;
        DataCapacity = dataCapacity;
    }

    /// <summary>Bytes of the data file whose blocks this file covers.</summary>
    public long DataCapacity { get; }

    /// <summary>The length of the checksum file for a data file of <paramref name="dataCapacity"/> bytes.</summary>
    public static long FileLength(long dataCapacity) => HeaderBytes + (dataCapacity >> BlockChecksum.BlockShift) * BlockChecksum.Size;

    /// <summary>Writes the header into a new, empty store (every slot unwritten) and makes it durable.</summary>
    public static BlockChecksumStore Initialize(IBackingStore store, long dataCapacity)
    {
        CheckGeometry(store, dataCapacity);
        Span<byte> header = stackalloc byte[HeaderLength];
        Magic.CopyTo(header);
        BinaryPrimitives.WriteInt32LittleEndian(header[8..], Version);
        BinaryPrimitives.WriteInt32LittleEndian(header[12..], BlockChecksum.BlockSize);
        BinaryPrimitives.WriteInt64LittleEndian(header[16..], dataCapacity);
        BinaryPrimitives.WriteUInt32LittleEndian(header[24..], Crc32C.Compute(header[..24]));
        store.Write(0, header);
        store.Flush();
        return new BlockChecksumStore(store, dataCapacity);
    }

    /// <summary>Opens the checksums of a data file of <paramref name="dataCapacity"/> bytes.</summary>
    /// <exception cref="InvalidDataException">The header is damaged or describes another data file.</exception>
    public static BlockChecksumStore Load(IBackingStore store, long dataCapacity, string name)
    {
        Span<byte> header = stackalloc byte[HeaderLength];
        store.Read(0, header);
        if (!header.StartsWith(Magic) || BinaryPrimitives.ReadUInt32LittleEndian(header[24..]) != Crc32C.Compute(header[..24]))
        {
            throw new InvalidDataException($"{name}: the block checksum file's header is damaged");
        }

        var version = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
        var blockSize = BinaryPrimitives.ReadInt32LittleEndian(header[12..]);
        var capacity = BinaryPrimitives.ReadInt64LittleEndian(header[16..]);
        if (version != Version || blockSize != BlockChecksum.BlockSize || capacity != dataCapacity)
        {
            throw new InvalidDataException(
                $"{name}: the block checksum file (version {version}, {blockSize}-byte blocks over {capacity} bytes) does not match its data file of {dataCapacity} bytes");
        }

        CheckGeometry(store, dataCapacity);
        return new BlockChecksumStore(store, dataCapacity);
    }

    /// <summary>Reads the slots of <paramref name="slots"/>.Length / 8 blocks from <paramref name="firstBlock"/>.</summary>
    public void Read(long firstBlock, Span<byte> slots) => _store.Read(SlotOffset(firstBlock), slots);

    public void Write(long firstBlock, ReadOnlySpan<byte> slots) => _store.Write(SlotOffset(firstBlock), slots);

    /// <summary>Marks <paramref name="count"/> blocks unwritten (their data was punched or freed).</summary>
    public void Clear(long firstBlock, long count)
    {
        if (count > 0)
        {
            _store.Discard(SlotOffset(firstBlock), count * BlockChecksum.Size);
        }
    }

    /// <summary>Makes every slot written or cleared so far durable (fsync).</summary>
    public void Flush() => _store.Flush();

    public void Dispose() => _store.Dispose();

    private static long SlotOffset(long block) => HeaderBytes + (block * BlockChecksum.Size);

    private static void CheckGeometry(IBackingStore store, long dataCapacity)
    {
        if (dataCapacity <= 0 || (dataCapacity & (BlockChecksum.BlockSize - 1)) != 0 || store.Length != FileLength(dataCapacity))
        {
            throw new InvalidDataException(
                $"a block checksum file of {store.Length} bytes cannot cover a data file of {dataCapacity} bytes (it needs {FileLength(dataCapacity)})");
        }
    }
}

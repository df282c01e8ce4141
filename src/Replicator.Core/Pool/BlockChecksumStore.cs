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
/// <para><b>Write-behind.</b> A pwrite of 8 bytes per 4 KiB write would cost about a quarter of the write
/// itself; so slots are written into 4 KiB pages kept in memory (read from the file on first touch), and
/// those pages reach the file in one pwrite each when <see cref="WriteBack"/> runs: at every flush, before
/// every activity-log update that may drop an extent from the log (see <c>ReplicaStore</c>), after resync
/// data and repairs, and whenever <see cref="MaxDirtyPages"/> are waiting. Reads see the pages in memory
/// first.</para>
/// <para><b>Ordering.</b> A write stores its data (pwrite), then its checksums (here). The pool's flush
/// syncs the data files, then writes back and syncs the checksum files, then the journal, so a flushed or
/// FUA write is durable with its checksum. Until then, a kill -9 may lose the checksums of blocks written
/// since the last write-back, and a power loss may tear data and checksums apart; every such block lies
/// in an extent the activity log names (no extent leaves the log before the checksums of its blocks were
/// written back), which the node checks at start (<c>ThinVolume.RecheckAfterCrash</c>). Writers of the
/// same slot are ordered by the pool's <see cref="BlockGuard"/>; this class only keeps its pages whole.</para>
/// </remarks>
internal sealed class BlockChecksumStore : IDisposable
{
    public const int HeaderBytes = 4096;

    /// <summary>Pages of checksums held in memory at most before a write waits for them to be written back (16 MiB, for 8 GiB of data).</summary>
    public const int MaxDirtyPages = 4096;

    private const int PageBytes = 4096;
    private const int SlotsPerPage = PageBytes / BlockChecksum.Size;
    private const int Version = 1;
    private const int HeaderLength = 28;
    private static ReadOnlySpan<byte> Magic => "RPLSUMS\0"u8;

    private readonly IStorageFile _store;
    private readonly Lock _lock = new();
    private readonly Lock _writeBack = new();
    private readonly Dictionary<long, DirtyPage> _dirty = [];

    /// <summary>Counts pages leaving memory: a page read from the file is current only if none left since it was found missing.</summary>
    private long _departures;

    private BlockChecksumStore(IStorageFile store, long dataCapacity)
    {
        _store = store;
        DataCapacity = dataCapacity;
    }

    /// <summary>Bytes of the data file whose blocks this file covers.</summary>
    public long DataCapacity { get; }

    /// <summary>Pages of checksums in memory that the file does not hold yet.</summary>
    public int DirtyPages
    {
        get
        {
            lock (_lock)
            {
                return _dirty.Count;
            }
        }
    }

    /// <summary>The length of the checksum file for a data file of <paramref name="dataCapacity"/> bytes.</summary>
    public static long FileLength(long dataCapacity) => HeaderBytes + (dataCapacity >> BlockChecksum.BlockShift) * BlockChecksum.Size;

    /// <summary>Writes the header into a new, empty store (every slot unwritten) and makes it durable.</summary>
    public static BlockChecksumStore Initialize(IStorageFile store, long dataCapacity)
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
    public static BlockChecksumStore Load(IStorageFile store, long dataCapacity, string name)
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

    /// <summary>Reads the slots of <paramref name="slots"/>.Length / 8 blocks from <paramref name="firstBlock"/>, the latest written first.</summary>
    public void Read(long firstBlock, Span<byte> slots)
    {
        var block = firstBlock;
        while (!slots.IsEmpty)
        {
            var (page, within, count) = Piece(block, slots.Length);
            var target = slots[..(count * BlockChecksum.Size)];
            var cached = false;
            lock (_lock)
            {
                if (_dirty.TryGetValue(page, out var dirty))
                {
                    dirty.Bytes.AsSpan(within * BlockChecksum.Size, target.Length).CopyTo(target);
                    cached = true;
                }
            }

            if (!cached)
            {
                _store.Read(SlotOffset(block), target);
            }

            slots = slots[target.Length..];
            block += count;
        }
    }

    /// <summary>Writes slots into memory; they reach the file at the next <see cref="WriteBack"/>.</summary>
    public void Write(long firstBlock, ReadOnlySpan<byte> slots)
    {
        var block = firstBlock;
        while (!slots.IsEmpty)
        {
            var (page, within, count) = Piece(block, slots.Length);
            var source = slots[..(count * BlockChecksum.Size)];
            byte[]? loaded = null;
            var seen = -1L;
            while (true)
            {
                lock (_lock)
                {
                    if (_dirty.TryGetValue(page, out var dirty) || (loaded is not null && seen == _departures))
                    {
                        if (dirty is null)
                        {
                            dirty = new DirtyPage(loaded!);
                            _dirty[page] = dirty;
                        }

                        source.CopyTo(dirty.Bytes.AsSpan(within * BlockChecksum.Size));
                        dirty.Version++;
                        break;
                    }

                    seen = _departures;
                }

                // First touch since the last write-back: the rest of the page comes from the file, read outside the lock;
                // if a page left memory meanwhile (its write-back may have changed the file), it is read again.
                loaded ??= new byte[PageBytes];
                _store.Read(SlotOffset(page * SlotsPerPage), loaded);
            }

            slots = slots[source.Length..];
            block += count;
        }

        if (DirtyPages > MaxDirtyPages)
        {
            WriteBack();
        }
    }

    /// <summary>Marks <paramref name="count"/> blocks unwritten (their data was punched or freed).</summary>
    public void Clear(long firstBlock, long count)
    {
        // Whole pages are punched in the file (dropping any copy in memory); the ragged ends are written as zeros.
        var firstWhole = (firstBlock + SlotsPerPage - 1) / SlotsPerPage;
        var endWhole = (firstBlock + count) / SlotsPerPage;
        if (endWhole <= firstWhole)
        {
            WriteZeros(firstBlock, count);
            return;
        }

        WriteZeros(firstBlock, (firstWhole * SlotsPerPage) - firstBlock);
        lock (_writeBack)
        {
            lock (_lock)
            {
                for (var page = firstWhole; page < endWhole; page++)
                {
                    _dirty.Remove(page);
                }
            }

            _store.Discard(SlotOffset(firstWhole * SlotsPerPage), (endWhole - firstWhole) * PageBytes);
            lock (_lock)
            {
                _departures++;
            }
        }

        WriteZeros(endWhole * SlotsPerPage, firstBlock + count - (endWhole * SlotsPerPage));
    }

    /// <summary>Writes every page of checksums held in memory to the file (the page cache: it survives a kill -9), one pwrite per page.</summary>
    public void WriteBack()
    {
        lock (_writeBack)
        {
            List<(long Page, DirtyPage Dirty)> pages;
            lock (_lock)
            {
                if (_dirty.Count == 0)
                {
                    return;
                }

                pages = [.. _dirty.Select(p => (p.Key, p.Value))];
            }

            pages.Sort((x, y) => x.Page.CompareTo(y.Page));
            var copy = new byte[PageBytes];
            foreach (var (page, dirty) in pages)
            {
                long version;
                lock (_lock)
                {
                    dirty.Bytes.CopyTo(copy, 0);
                    version = dirty.Version;
                }

                // The last page of a small file may reach past the slots: the file keeps its length.
                var offset = SlotOffset(page * SlotsPerPage);
                _store.Write(offset, copy.AsSpan(0, (int)Math.Min(PageBytes, FileLength(DataCapacity) - offset)));
                lock (_lock)
                {
                    // A page written again meanwhile stays in memory for the next write-back.
                    if (dirty.Version == version && _dirty.TryGetValue(page, out var current) && current == dirty)
                    {
                        _dirty.Remove(page);
                        _departures++;
                    }
                }
            }
        }
    }

    /// <summary>Makes every slot written or cleared so far durable: written back, then synced.</summary>
    public void Flush()
    {
        WriteBack();
        _store.Flush();
    }

    public void Dispose() => _store.Dispose();

    private static long SlotOffset(long block) => HeaderBytes + (block * BlockChecksum.Size);

    /// <summary>The page holding <paramref name="block"/>'s slot, the slot's index in it, and how many of the wanted slots the page holds from there.</summary>
    private static (long Page, int Within, int Count) Piece(long block, int bytes)
    {
        var within = (int)(block % SlotsPerPage);
        return (block / SlotsPerPage, within, Math.Min(bytes / BlockChecksum.Size, SlotsPerPage - within));
    }

    private void WriteZeros(long firstBlock, long count)
    {
        if (count > 0)
        {
            Write(firstBlock, new byte[count * BlockChecksum.Size]);
        }
    }

    private static void CheckGeometry(IStorageFile store, long dataCapacity)
    {
        if (dataCapacity <= 0 || (dataCapacity & (BlockChecksum.BlockSize - 1)) != 0 || store.Length != FileLength(dataCapacity))
        {
            throw new InvalidDataException(
                $"a block checksum file of {store.Length} bytes cannot cover a data file of {dataCapacity} bytes (it needs {FileLength(dataCapacity)})");
        }
    }

    /// <summary>A page of slots newer than the file's, and how many times it was written (so a write-back knows whether it caught the latest).</summary>
    private sealed class DirtyPage(byte[] bytes)
    {
        public byte[] Bytes { get; } = bytes;

        public long Version { get; set; }
    }
}

using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Replicator.Core.Hashing;
using Replicator.Core.Storage;

namespace Replicator.Core.Replication;

/// <summary>
/// One <see cref="DirtyBitmap"/> on disk: a header page, then the dense word array in a sparse
/// file, so a clean bitmap of a 16 TiB volume takes no disk space and loads without reading 512 MiB.
/// </summary>
/// <remarks>
/// <code>
/// offset 0 and 512: header copy   "RPLBMAP\0"  u32 version  u32 granularity  i64 volume size  u64 sequence  u32 crc32c
/// offset 4096:      word i at 4096 + 8 i, little-endian; the file extends to the end of the last page of words
/// </code>
/// <para>
/// Marks reach the file through <see cref="WriteWords"/>: one positional write per run of adjacent
/// changed words, into the page cache, which survives a kill -9 of the process; <see cref="Flush"/>
/// makes them survive power loss. An aligned 8-byte word never straddles a sector, so a crash leaves
/// each word old or new. Clears may be written late or never: a stale set bit costs a resend of its
/// region, never data.
/// </para>
/// <para>
/// The header is written only at creation and when the volume grows, copy A then copy B, each
/// synced; loading takes the intact copy with the higher sequence, so a crash between them loses
/// nothing. A file shorter than its header's geometry needs was cut: its bits are unknown and
/// loading refuses it (the node then falls back to a full sync).
/// </para>
/// </remarks>
internal sealed class BitmapFile : IDisposable
{
    public const long DataOffset = 4096;
    private const int Version = 1;
    private const int HeaderBytes = 36;
    private const int SecondHeaderOffset = 512;
    private const int LoadChunkBytes = 1 << 20;
    private static ReadOnlySpan<byte> Magic => "RPLBMAP\0"u8;

    private readonly IStorageFile _file;
    private ulong _sequence;

    private BitmapFile(IStorageFile file, int granularity, long volumeSize, ulong sequence)
    {
        _file = file;
        Granularity = granularity;
        VolumeSize = volumeSize;
        _sequence = sequence;
    }

    public string Path => _file.Path;

    public int Granularity { get; }

    public long VolumeSize { get; private set; }

    /// <summary>Creates the file of a clean bitmap, durably (file and directory synced).</summary>
    public static BitmapFile Create(IFileSystem files, string path, long volumeSize, int granularity)
    {
        var geometry = new DirtyBitmap(volumeSize, granularity);
        var file = files.OpenFile(path, FileOpenMode.CreateNew);
        try
        {
            var bitmap = new BitmapFile(file, granularity, 0, 0);
            bitmap.WriteGeometry(geometry);
            files.SyncDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
            return bitmap;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Opens the file and loads its bitmap, reading only the parts of the file that hold data.</summary>
    /// <exception cref="InvalidDataException">Neither header copy is intact, or the file was cut short.</exception>
    public static BitmapFile Open(IFileSystem files, string path, out DirtyBitmap bitmap)
    {
        var file = files.OpenFile(path, FileOpenMode.Open);
        try
        {
            var header = new byte[SecondHeaderOffset + HeaderBytes];
            var read = file.Read(0, header);
            var a = ParseHeader(header.AsSpan(0, Math.Min(read, HeaderBytes)));
            var b = read >= header.Length ? ParseHeader(header.AsSpan(SecondHeaderOffset)) : null;
            var chosen = (a, b) switch
            {
                (null, null) => throw new InvalidDataException($"{path}: neither copy of the bitmap header is intact"),
                (not null, null) => a.Value,
                (null, not null) => b.Value,
                _ => a.Value.Sequence >= b.Value.Sequence ? a.Value : b.Value,
            };

            bitmap = new DirtyBitmap(chosen.VolumeSize, chosen.Granularity);
            var needed = DataOffset + bitmap.PageCount * DirtyBitmap.PageBytes;
            var length = file.Length;
            if (length < needed)
            {
                throw new InvalidDataException($"{path} is {length} bytes, its header needs {needed}: the file was cut and its bits are lost");
            }

            LoadWords(file, bitmap);
            return new BitmapFile(file, chosen.Granularity, chosen.VolumeSize, chosen.Sequence);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Writes exactly <paramref name="words"/>, one positional write per run of consecutive indices.</summary>
    public void WriteWords(ReadOnlySpan<BitmapWord> words)
    {
        Span<byte> buffer = stackalloc byte[64 * sizeof(ulong)];
        var wordCount = WordCount;
        var i = 0;
        while (i < words.Length)
        {
            var first = words[i].Index;
            if ((ulong)first >= (ulong)wordCount)
            {
                throw new ArgumentOutOfRangeException(nameof(words), first, $"word {first} is past the bitmap file's {wordCount} words");
            }

            var n = 0;
            while (i < words.Length && n < 64 && words[i].Index == first + n && words[i].Index < wordCount)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(buffer[(n * sizeof(ulong))..], words[i].Value);
                n++;
                i++;
            }

            _file.Write(DataOffset + first * sizeof(ulong), buffer[..(n * sizeof(ulong))]);
        }
    }

    public void WriteWords(List<BitmapWord> words) => WriteWords(CollectionsMarshal.AsSpan(words));

    /// <summary>
    /// Makes the file equal <paramref name="bitmap"/> after a bulk change (a full sync's
    /// <see cref="DirtyBitmap.MarkAll"/>, a merge): writes every dirty page, then turns clean pages
    /// into holes, then syncs. Bits set in the bitmap are never absent from the file in between.
    /// </summary>
    public void WriteAll(DirtyBitmap bitmap)
    {
        ArgumentNullException.ThrowIfNull(bitmap);
        if (bitmap.Granularity != Granularity || bitmap.VolumeSize != VolumeSize)
        {
            throw new ArgumentException($"the bitmap ({bitmap.Granularity}-byte regions, {bitmap.VolumeSize} bytes) is not this file's geometry", nameof(bitmap));
        }

        var page = new byte[DirtyBitmap.PageBytes];
        foreach (var index in bitmap.AllocatedPageIndices())
        {
            var words = bitmap.PageContents(index);
            for (var i = 0; i < words.Length; i++)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(page.AsSpan(i * sizeof(ulong)), words[i]);
            }

            _file.Write(PageOffset(index), page);
        }

        var cleanStart = 0L;
        foreach (var index in bitmap.AllocatedPageIndices())
        {
            Erase(cleanStart, index);
            cleanStart = index + 1;
        }

        Erase(cleanStart, bitmap.PageCount);
        Flush();
    }

    /// <summary>Grows the file for a larger volume, durably; the caller grows its <see cref="DirtyBitmap"/> to the same size.</summary>
    public void Grow(long volumeSize)
    {
        if (volumeSize < VolumeSize)
        {
            throw new ArgumentOutOfRangeException(nameof(volumeSize), volumeSize, $"a volume cannot shrink below {VolumeSize} bytes");
        }

        WriteGeometry(new DirtyBitmap(volumeSize, Granularity));
    }

    /// <summary>Makes every word written so far durable (fsync).</summary>
    public void Flush() => _file.Flush();

    public void Dispose() => _file.Dispose();

    private long WordCount => (long)(((ulong)VolumeSize + (ulong)Granularity - 1) / (ulong)Granularity + 63) >> 6;

    private static long PageOffset(long page) => DataOffset + page * DirtyBitmap.PageBytes;

    /// <summary>Extends the file, then writes header copy A and copy B, syncing after each step.</summary>
    private void WriteGeometry(DirtyBitmap geometry)
    {
        var length = DataOffset + geometry.PageCount * DirtyBitmap.PageBytes;
        if (_file.Length < length)
        {
            _file.SetLength(length);
        }

        _file.Flush();
        var header = new byte[HeaderBytes];
        Magic.CopyTo(header);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8), Version);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(12), geometry.Granularity);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(16), geometry.VolumeSize);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(24), _sequence + 1);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(32), Crc32C.Compute(header.AsSpan(0, 32)));
        _file.Write(0, header);
        _file.Flush();
        _file.Write(SecondHeaderOffset, header);
        _file.Flush();
        _sequence++;
        VolumeSize = geometry.VolumeSize;
    }

    private static (int Granularity, long VolumeSize, ulong Sequence)? ParseHeader(ReadOnlySpan<byte> header)
    {
        if (header.Length < HeaderBytes || !header.StartsWith(Magic)
            || BinaryPrimitives.ReadUInt32LittleEndian(header[32..]) != Crc32C.Compute(header[..32]))
        {
            return null;
        }

        var version = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
        if (version != Version)
        {
            throw new InvalidDataException($"bitmap file version {version} is not supported (this build reads {Version})");
        }

        var granularity = BinaryPrimitives.ReadInt32LittleEndian(header[12..]);
        var volumeSize = BinaryPrimitives.ReadInt64LittleEndian(header[16..]);
        if (granularity is < DirtyBitmap.MinGranularity or > DirtyBitmap.MaxGranularity || !int.IsPow2(granularity) || volumeSize < 0)
        {
            throw new InvalidDataException($"bitmap file header names an impossible geometry: {granularity}-byte regions over {volumeSize} bytes");
        }

        return (granularity, volumeSize, BinaryPrimitives.ReadUInt64LittleEndian(header[24..]));
    }

    /// <summary>Reads the data segments of the word array in large chunks, skipping all-zero chunks.</summary>
    private static void LoadWords(IStorageFile file, DirtyBitmap bitmap)
    {
        var end = DataOffset + bitmap.WordCount * sizeof(ulong);
        var buffer = new byte[Math.Min(LoadChunkBytes, end - DataOffset)];
        var position = file.NextData(DataOffset);
        while (position >= 0 && position < end)
        {
            position = DataOffset + ((position - DataOffset) & ~(long)(sizeof(ulong) - 1));
            var segmentEnd = Math.Min(file.NextHole(position), end);
            while (position < segmentEnd)
            {
                var chunk = buffer.AsSpan(0, (int)Math.Min(buffer.Length, segmentEnd - position));
                var read = file.Read(position, chunk);
                if (read < sizeof(ulong))
                {
                    return;
                }

                chunk = chunk[..(read & ~(sizeof(ulong) - 1))];
                if (chunk.ContainsAnyExcept((byte)0))
                {
                    var firstWord = (position - DataOffset) / sizeof(ulong);
                    for (var i = 0; i < chunk.Length; i += sizeof(ulong))
                    {
                        var value = BinaryPrimitives.ReadUInt64LittleEndian(chunk[i..]);
                        if (value != 0)
                        {
                            bitmap.OrWord(firstWord + i / sizeof(ulong), value, null);
                        }
                    }
                }

                position += chunk.Length;
            }

            position = file.NextData(segmentEnd);
        }
    }

    /// <summary>Zeroes pages [<paramref name="firstPage"/>, <paramref name="endPage"/>) of the file: a hole where the file system allows.</summary>
    private void Erase(long firstPage, long endPage)
    {
        if (endPage > firstPage)
        {
            _file.Discard(PageOffset(firstPage), (endPage - firstPage) * DirtyBitmap.PageBytes);
        }
    }
}

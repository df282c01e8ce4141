namespace Replicator.Core.Storage;

/// <summary>
/// An open file of an <see cref="IFileSystem"/>, read and written at byte offsets (pread/pwrite).
/// Calls are synchronous; callers decide which thread they run on. Reads and writes at different
/// offsets may run concurrently; the caller orders overlapping ones.
/// </summary>
/// <remarks>
/// This is what a pool data file is, too: the data path is one interface call into
/// <see cref="System.IO.RandomAccess"/> on a span, with no allocation and no extra copy.
/// </remarks>
public interface IStorageFile : IDisposable
{
    string Path { get; }

    /// <summary>The file's size in bytes. Bytes never written (holes) read as zeros.</summary>
    long Length { get; }

    /// <summary>
    /// Reads from <paramref name="offset"/> until <paramref name="destination"/> is full or the end
    /// of the file, and returns the bytes read (fewer than asked only at the end of the file).
    /// </summary>
    int Read(long offset, Span<byte> destination);

    /// <summary>Writes all of <paramref name="source"/> at <paramref name="offset"/>, extending the file if it ends before.</summary>
    void Write(long offset, ReadOnlySpan<byte> source);

    /// <summary>Cuts or extends the file (extended bytes read as zeros and take no space).</summary>
    void SetLength(long length);

    /// <summary>Makes every completed write, discard and length change of this file durable (fsync).</summary>
    /// <remarks>
    /// After a failed flush, Linux forgets the dirty pages it covered: a later flush succeeds
    /// although that data never became durable. A caller must treat a failed flush as data lost.
    /// </remarks>
    void Flush();

    /// <summary>
    /// Makes the range read as zeros and, where the file system allows, gives its space back (a
    /// punched hole, the file's size unchanged); elsewhere the range is overwritten with zeros.
    /// </summary>
    void Discard(long offset, long length);

    /// <summary>The first offset at or after <paramref name="offset"/> that may hold data (SEEK_DATA), or -1 when only holes follow.</summary>
    long NextData(long offset);

    /// <summary>The first hole at or after <paramref name="offset"/> (SEEK_HOLE); the end of the file counts as one.</summary>
    long NextHole(long offset);
}

namespace Replicator.Core.Storage;

/// <summary>
/// A flat, byte-addressed store the pool keeps its extents in: a file on the node's disk,
/// or memory in tests and benchmarks. Calls are synchronous (pread/pwrite); callers decide
/// which thread they run on.
/// </summary>
public interface IBackingStore : IDisposable
{
    /// <summary>Capacity in bytes. Bytes never written read as zeros.</summary>
    long Length { get; }

    void Read(long offset, Span<byte> destination);

    void Write(long offset, ReadOnlySpan<byte> source);

    /// <summary>
    /// Returns the range to the state of never having been written: it reads as zeros and, where
    /// the file system allows, gives its space back (a punched hole).
    /// </summary>
    void Discard(long offset, long length);

    /// <summary>Makes every completed write and discard durable (fsync).</summary>
    void Flush();
}

namespace Replicator.Core.Devices;

/// <summary>
/// A byte-addressed virtual disk: what the NBD server exports and what the gateway forwards to.
/// A local thin volume, a replicated volume and a gateway path all implement it, so the
/// NBD session never knows which one it is serving.
/// </summary>
/// <remarks>
/// Callers validate ranges against <see cref="Size"/> before calling (the NBD layer answers
/// bad requests itself); implementations still refuse an out-of-range request with
/// <see cref="StorageError.OutOfRange"/> rather than touching storage. Failures are reported by
/// throwing <see cref="BlockDeviceException"/>; any other exception means a bug and is reported
/// to the client as an I/O error.
/// </remarks>
public interface IBlockDevice
{
    /// <summary>Virtual size in bytes. May grow while the device is open.</summary>
    long Size { get; }

    /// <summary>What the device supports; the NBD layer advertises transmission flags from it.</summary>
    DeviceFeatures Features { get; }

    ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken = default);

    /// <summary>Writes <paramref name="source"/>; with <see cref="IoFlags.Fua"/> it is durable before this completes.</summary>
    ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, IoFlags flags, CancellationToken cancellationToken = default);

    /// <summary>Makes every write completed before this call durable.</summary>
    ValueTask FlushAsync(CancellationToken cancellationToken = default);

    /// <summary>Discards the range: afterwards it reads as zeros and whole allocation units in it take no space.</summary>
    ValueTask TrimAsync(long offset, long length, IoFlags flags, CancellationToken cancellationToken = default);

    /// <summary>
    /// Makes the range read as zeros. Without <see cref="IoFlags.NoHole"/> whole allocation units are
    /// freed; with it they stay allocated (written with zeros).
    /// </summary>
    ValueTask WriteZeroesAsync(long offset, long length, IoFlags flags, CancellationToken cancellationToken = default);

    /// <summary>A hint that the range will be read soon.</summary>
    ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken = default);

    /// <summary>
    /// Describes the allocation of <c>[offset, offset + length)</c> as consecutive extents starting at
    /// <paramref name="offset"/>. The extents cover at least one byte and at most the requested range.
    /// </summary>
    ValueTask<IReadOnlyList<AllocationExtent>> GetAllocationAsync(long offset, long length, CancellationToken cancellationToken = default);
}

[Flags]
public enum IoFlags
{
    None = 0,
    /// <summary>Force unit access: durable before completion.</summary>
    Fua = 1,
    /// <summary>Write zeroes but keep the space allocated.</summary>
    NoHole = 2,
}

[Flags]
public enum DeviceFeatures
{
    None = 0,
    ReadOnly = 1,
    Flush = 2,
    Fua = 4,
    Trim = 8,
    WriteZeroes = 16,
    Cache = 32,
    /// <summary>A flush on any connection covers writes completed on every other connection.</summary>
    MultiConn = 64,
    BlockStatus = 128,

    AllWritable = Flush | Fua | Trim | WriteZeroes | Cache | MultiConn | BlockStatus,
}

/// <summary>Allocation state of a run of bytes, in the terms of NBD's <c>base:allocation</c> context.</summary>
[Flags]
public enum AllocationState
{
    /// <summary>Allocated; contents unknown.</summary>
    Data = 0,
    /// <summary>Not allocated: takes no space.</summary>
    Hole = 1,
    /// <summary>Reads as zeros.</summary>
    Zero = 2,
}

public readonly record struct AllocationExtent(long Length, AllocationState State);

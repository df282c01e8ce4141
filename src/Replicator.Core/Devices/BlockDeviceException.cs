namespace Replicator.Core.Devices;

/// <summary>Why a block device refused or failed a request. Maps one to one onto NBD error values.</summary>
public enum StorageError
{
    /// <summary>The storage below failed (EIO).</summary>
    Io,
    /// <summary>The pool has no free extent left, or the write ends past the device (ENOSPC).</summary>
    NoSpace,
    /// <summary>Offset and length fall outside the device (EINVAL for reads, ENOSPC for writes in NBD).</summary>
    OutOfRange,
    /// <summary>A malformed request (EINVAL).</summary>
    InvalidArgument,
    /// <summary>Writes are not allowed now: read-only, or this replica lost its quorum (EPERM).</summary>
    NotPermitted,
    /// <summary>The request is not supported by this device (ENOTSUP).</summary>
    NotSupported,
    /// <summary>The device is closing (ESHUTDOWN).</summary>
    Shutdown,
}

/// <summary>A block device request that failed for a reason the client should be told.</summary>
public class BlockDeviceException : IOException
{
    public BlockDeviceException(StorageError error, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Error = error;
    }

    public StorageError Error { get; }
}

/// <summary>
/// A block of the volume fails its checksum (or could not be vouched for after a crash) and nothing
/// here could repair it: an I/O error (EIO) to the client, never the wrong bytes.
/// </summary>
internal sealed class CorruptBlockException(long offset, Hashing.BlockStatus status, string message)
    : BlockDeviceException(StorageError.Io, message)
{
    /// <summary>The volume offset of the 4 KiB block.</summary>
    public long Offset { get; } = offset;

    public Hashing.BlockStatus Status { get; } = status;
}

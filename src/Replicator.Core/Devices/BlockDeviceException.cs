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

    /// <summary>
    /// What a client is told of an I/O error of the storage below: a full file system (ENOSPC, the
    /// <see cref="IOException.HResult"/> .NET gives it) is <see cref="StorageError.NoSpace"/>, anything else
    /// <see cref="StorageError.Io"/>. <paramref name="doing"/> completes "… while {doing}".
    /// </summary>
    public static BlockDeviceException FromIOException(IOException error, string doing)
    {
        ArgumentNullException.ThrowIfNull(error);
        return error as BlockDeviceException ?? (error.HResult == ENOSPC
            ? new BlockDeviceException(StorageError.NoSpace, $"the file system is full while {doing}: {error.Message}", error)
            : new BlockDeviceException(StorageError.Io, $"I/O error while {doing}: {error.Message}", error));
    }

    private const int ENOSPC = 28;
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

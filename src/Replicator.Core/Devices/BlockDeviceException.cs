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
public sealed class BlockDeviceException : IOException
{
    public BlockDeviceException(StorageError error, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Error = error;
    }

    public StorageError Error { get; }

    /// <summary>
    /// What the client is told of an I/O exception from the file system below while <paramref name="doing"/>:
    /// ENOSPC is <see cref="StorageError.NoSpace"/>, everything else <see cref="StorageError.Io"/>.
    /// </summary>
    public static BlockDeviceException FromIOException(IOException e, string doing) =>
        e.HResult == ENOSPC
            ? new BlockDeviceException(StorageError.NoSpace, $"the file system is full while {doing}", e)
            : new BlockDeviceException(StorageError.Io, $"I/O error while {doing}: {e.Message}", e);

    private const int ENOSPC = 28;
}

using Replicator.Core.Devices;

namespace Replicator.Protocol.Nbd.Client;

/// <summary>Why a client connection ended.</summary>
internal enum NbdClientEndReason
{
    /// <summary>Still open.</summary>
    None,
    /// <summary>The server closed the connection.</summary>
    ServerClosed,
    /// <summary>Reading from or writing to the transport failed (reset, refused, broken pipe).</summary>
    TransportError,
    /// <summary>The server sent something the protocol does not allow; nothing more from it is trusted.</summary>
    ProtocolError,
    /// <summary>This side gave up on the connection (<see cref="NbdClient.Abort"/>): a timeout, a failover, a shutdown.</summary>
    Aborted,
    /// <summary>This side disconnected cleanly with NBD_CMD_DISC.</summary>
    Disconnected,
}

/// <summary>
/// The connection ended before the request was answered: whether the server applied it is unknown. Distinct
/// from a <see cref="BlockDeviceException"/>, which means the server answered with an error, so a caller with
/// another path to the data can tell "the path died" from "the data said no".
/// </summary>
internal sealed class NbdConnectionLostException(string connection, NbdClientEndReason reason, string detail)
    : IOException($"NBD connection {connection} ended ({reason}): {detail}")
{
    public string Connection { get; } = connection;

    public NbdClientEndReason Reason { get; } = reason;

    public string Detail { get; } = detail;
}

/// <summary>NBD error values as the device errors of Core, and back (<see cref="NbdErrors.FromStorageError"/>).</summary>
internal static class NbdClientErrors
{
    public static StorageError ToStorageError(uint error) => error switch
    {
        NbdWire.EPerm => StorageError.NotPermitted,
        NbdWire.EInval or NbdWire.EOverflow => StorageError.InvalidArgument,
        NbdWire.ENoSpc => StorageError.NoSpace,
        NbdWire.ENotSup => StorageError.NotSupported,
        NbdWire.EShutdown => StorageError.Shutdown,
        _ => StorageError.Io,
    };

    public static BlockDeviceException ToException(string connection, ushort command, uint error, string? message) =>
        new(ToStorageError(error),
            $"{NbdErrors.CommandName(command)} on {connection} failed with {NbdErrors.ErrorName(error)}{(string.IsNullOrEmpty(message) ? "" : ": " + message)}");
}

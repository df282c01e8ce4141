using Replicator.Core.Devices;

namespace Replicator.Protocol.Nbd;

/// <summary>Turns device failures into NBD error values, and error values and codes into names for logs.</summary>
internal static class NbdErrors
{
    /// <summary>
    /// The NBD error for a failed device call. Out of range is ENOSPC for the commands that write
    /// (WRITE, WRITE_ZEROES) and EINVAL for the rest, as the spec asks. ENOTSUP is only for FAST_ZERO,
    /// which this server does not advertise, so "not supported" is EINVAL.
    /// </summary>
    public static uint FromStorageError(StorageError error, ushort command) => error switch
    {
        StorageError.NoSpace => NbdWire.ENoSpc,
        StorageError.OutOfRange => IsWrite(command) ? NbdWire.ENoSpc : NbdWire.EInval,
        StorageError.InvalidArgument => NbdWire.EInval,
        StorageError.NotPermitted => NbdWire.EPerm,
        StorageError.NotSupported => NbdWire.EInval,
        StorageError.Shutdown => NbdWire.EShutdown,
        _ => NbdWire.EIo,
    };

    /// <summary>Commands for which "beyond the end of the device" means "no space" (ENOSPC).</summary>
    public static bool IsWrite(ushort command) =>
        command is NbdWire.CmdWrite or NbdWire.CmdWriteZeroes;

    public static string ErrorName(uint error) => error switch
    {
        NbdWire.Success => "success",
        NbdWire.EPerm => "EPERM",
        NbdWire.EIo => "EIO",
        NbdWire.ENoMem => "ENOMEM",
        NbdWire.EInval => "EINVAL",
        NbdWire.ENoSpc => "ENOSPC",
        NbdWire.EOverflow => "EOVERFLOW",
        NbdWire.ENotSup => "ENOTSUP",
        NbdWire.EShutdown => "ESHUTDOWN",
        _ => error.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    public static string CommandName(ushort command) => command switch
    {
        NbdWire.CmdRead => "READ",
        NbdWire.CmdWrite => "WRITE",
        NbdWire.CmdDisc => "DISC",
        NbdWire.CmdFlush => "FLUSH",
        NbdWire.CmdTrim => "TRIM",
        NbdWire.CmdCache => "CACHE",
        NbdWire.CmdWriteZeroes => "WRITE_ZEROES",
        NbdWire.CmdBlockStatus => "BLOCK_STATUS",
        _ => "unknown",
    };

    public static string OptionName(uint option) => option switch
    {
        NbdWire.OptExportName => "EXPORT_NAME",
        NbdWire.OptAbort => "ABORT",
        NbdWire.OptList => "LIST",
        NbdWire.OptStartTls => "STARTTLS",
        NbdWire.OptInfo => "INFO",
        NbdWire.OptGo => "GO",
        NbdWire.OptStructuredReply => "STRUCTURED_REPLY",
        NbdWire.OptListMetaContext => "LIST_META_CONTEXT",
        NbdWire.OptSetMetaContext => "SET_META_CONTEXT",
        _ => "unknown",
    };

    public static string ReplyName(uint reply) => reply switch
    {
        NbdWire.RepAck => "ACK",
        NbdWire.RepErrUnsup => "ERR_UNSUP",
        NbdWire.RepErrPolicy => "ERR_POLICY",
        NbdWire.RepErrInvalid => "ERR_INVALID",
        NbdWire.RepErrPlatform => "ERR_PLATFORM",
        NbdWire.RepErrTlsReqd => "ERR_TLS_REQD",
        NbdWire.RepErrUnknown => "ERR_UNKNOWN",
        NbdWire.RepErrShutdown => "ERR_SHUTDOWN",
        NbdWire.RepErrBlockSizeReqd => "ERR_BLOCK_SIZE_REQD",
        NbdWire.RepErrTooBig => "ERR_TOO_BIG",
        _ => reply.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}

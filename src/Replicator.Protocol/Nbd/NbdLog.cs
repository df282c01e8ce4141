using System.Net;
using Microsoft.Extensions.Logging;

namespace Replicator.Protocol.Nbd;

/// <summary>Every log line the NBD server writes, source-generated so the hot path formats nothing unless enabled.</summary>
internal static partial class NbdLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Debug, Message = "NBD connection {Connection} started")]
    public static partial void SessionStarted(ILogger logger, string connection);

    [LoggerMessage(EventId = 2, Message = "NBD connection {Connection} ended: {Reason}. {Detail}")]
    public static partial void SessionEnded(ILogger logger, LogLevel level, string connection, NbdConnectionEndReason reason, string detail);

    [LoggerMessage(EventId = 3, Level = LogLevel.Error, Message = "NBD connection {Connection} failed")]
    public static partial void SessionFailed(ILogger logger, string connection, Exception exception);

    [LoggerMessage(EventId = 10, Level = LogLevel.Information,
        Message = "NBD connection {Connection}: option {Option} refused with {Reply}: {Reason}")]
    public static partial void OptionRefused(ILogger logger, string connection, string option, string reply, string reason);

    [LoggerMessage(EventId = 11, Level = LogLevel.Information,
        Message = "NBD connection {Connection} serves export '{Export}' ({Size} bytes, transmission flags 0x{Flags:x4}, structured replies {Structured}, base:allocation {BaseAllocation}, alignment {Alignment})")]
    public static partial void ExportSelected(
        ILogger logger, string connection, string export, long size, ushort flags, bool structured, bool baseAllocation, uint alignment);

    [LoggerMessage(EventId = 12, Level = LogLevel.Information,
        Message = "NBD connection {Connection} uses TLS ({Protocol}); client certificate: {ClientCertificate}")]
    public static partial void TlsStarted(ILogger logger, string connection, string protocol, string clientCertificate);

    [LoggerMessage(EventId = 20, Level = LogLevel.Warning,
        Message = "NBD connection {Connection}: {Command} refused with {Error}: {Reason} (handle 0x{Handle:x}, offset {Offset}, length {Length}, flags 0x{Flags:x})")]
    public static partial void RequestRefused(
        ILogger logger, string connection, string command, string error, string reason, ulong handle, ulong offset, uint length, ushort flags);

    [LoggerMessage(EventId = 21, Level = LogLevel.Warning,
        Message = "NBD connection {Connection}: {Command} failed with {Error}: {Reason} (handle 0x{Handle:x}, offset {Offset}, length {Length})")]
    public static partial void DeviceFailed(
        ILogger logger, string connection, string command, string error, string reason, ulong handle, ulong offset, uint length);

    [LoggerMessage(EventId = 22, Level = LogLevel.Error,
        Message = "NBD connection {Connection}: {Command} failed unexpectedly, answered EIO (handle 0x{Handle:x}, offset {Offset}, length {Length})")]
    public static partial void DeviceBug(
        ILogger logger, string connection, string command, ulong handle, ulong offset, uint length, Exception exception);

    [LoggerMessage(EventId = 23, Level = LogLevel.Debug, Message = "NBD connection {Connection}: a reply could not be sent")]
    public static partial void ReplyFailed(ILogger logger, string connection, Exception exception);

    [LoggerMessage(EventId = 30, Level = LogLevel.Information, Message = "NBD server listening on {EndPoint}")]
    public static partial void Listening(ILogger logger, EndPoint endPoint);

    [LoggerMessage(EventId = 31, Level = LogLevel.Information, Message = "NBD server removed the stale socket file {Path}")]
    public static partial void StaleSocketRemoved(ILogger logger, string path);

    [LoggerMessage(EventId = 32, Level = LogLevel.Warning, Message = "NBD server could not accept a connection on {EndPoint}")]
    public static partial void AcceptFailed(ILogger logger, EndPoint endPoint, Exception exception);

    [LoggerMessage(EventId = 33, Level = LogLevel.Warning,
        Message = "NBD server stop: {Count} connections still busy after {Timeout}; closing them")]
    public static partial void StopTimedOut(ILogger logger, int count, TimeSpan timeout);

    [LoggerMessage(EventId = 34, Level = LogLevel.Warning,
        Message = "NBD server stop: {Count} connections did not finish after being aborted; their device calls are still running and their sockets are closed")]
    public static partial void AbortTimedOut(ILogger logger, int count);

    [LoggerMessage(EventId = 36, Level = LogLevel.Warning,
        Message = "NBD server refused a connection from {Remote}: {Open} connections are open, the most it allows ({Refused} refused since the last such line)")]
    public static partial void TooManyConnections(ILogger logger, string remote, int open, long refused);

    [LoggerMessage(EventId = 35, Level = LogLevel.Information, Message = "NBD server stopped")]
    public static partial void Stopped(ILogger logger);
}

using Microsoft.Extensions.Logging;

namespace Replicator.Protocol.Nbd.Client;

/// <summary>Every log line the NBD client writes.</summary>
internal static partial class NbdClientLog
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Debug,
        Message = "NBD client {Connection} connected: {Size} bytes, transmission flags 0x{Flags:x4}, structured replies {Structured}, base:allocation {BaseAllocation}, TLS {Tls}")]
    public static partial void Connected(ILogger logger, string connection, long size, ushort flags, bool structured, bool baseAllocation, string tls);

    [LoggerMessage(EventId = 101, Message = "NBD client {Connection} ended ({Reason}): {Detail}; {Failed} requests in flight failed")]
    public static partial void Ended(ILogger logger, LogLevel level, string connection, NbdClientEndReason reason, string detail, int failed);

    [LoggerMessage(EventId = 102, Level = LogLevel.Error, Message = "NBD client {Connection} failed while processing a reply")]
    public static partial void ReceiveFailed(ILogger logger, string connection, Exception exception);
}

namespace Replicator.Node.Gateway;

/// <summary>Every log line of the gateway, each naming the volume and, where there is one, the node.</summary>
internal static partial class GatewayLog
{
    [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "Volume {Volume}: path to node {Node} is up ({Connections} connections)")]
    public static partial void PathUp(ILogger logger, string volume, string node, int connections);

    [LoggerMessage(EventId = 201, Level = LogLevel.Warning, Message = "Volume {Volume}: cannot connect to node {Node}: {Reason}; retrying with backoff")]
    public static partial void ConnectFailed(ILogger logger, string volume, string node, string reason);

    [LoggerMessage(EventId = 202, Level = LogLevel.Warning, Message = "Volume {Volume}: path to node {Node} failed: {Reason} ({InFlight} requests in flight are sent again)")]
    public static partial void PathFailed(ILogger logger, string volume, string node, string reason, int inFlight);

    [LoggerMessage(EventId = 203, Level = LogLevel.Warning, Message = "Volume {Volume}: switched from node {From} to node {To} (switch {Count}): {Reason}")]
    public static partial void Switched(ILogger logger, string volume, string from, string to, string reason, long count);

    [LoggerMessage(EventId = 204, Level = LogLevel.Information, Message = "Volume {Volume}: served by node {Node} ({Reason})")]
    public static partial void Serving(ILogger logger, string volume, string node, string reason);

    [LoggerMessage(EventId = 205, Level = LogLevel.Warning,
        Message = "Volume {Volume}: node {Node} has not answered a request for {Seconds:0.0} s, and no other node can take over; waiting")]
    public static partial void SlowWithoutAlternative(ILogger logger, string volume, string node, double seconds);

    [LoggerMessage(EventId = 206, Level = LogLevel.Information, Message = "Volume {Volume}: preferred node changed from {From} to {To}")]
    public static partial void PreferredChanged(ILogger logger, string volume, string from, string to);

    [LoggerMessage(EventId = 207, Level = LogLevel.Information, Message = "Volume {Volume} ({Size} bytes, preferred node {Preferred}) is exported by the gateway")]
    public static partial void VolumeAdded(ILogger logger, string volume, long size, string preferred);

    [LoggerMessage(EventId = 208, Level = LogLevel.Information, Message = "Volume {Volume} is gone from every node; the gateway no longer exports it")]
    public static partial void VolumeRemoved(ILogger logger, string volume);

    [LoggerMessage(EventId = 209, Level = LogLevel.Warning, Message = "Node {Node}: admin API unreachable: {Reason}")]
    public static partial void AdminUnreachable(ILogger logger, string node, string reason);

    [LoggerMessage(EventId = 210, Level = LogLevel.Information, Message = "Node {Node}: admin API reachable again")]
    public static partial void AdminReachable(ILogger logger, string node);

    [LoggerMessage(EventId = 211, Level = LogLevel.Information,
        Message = "Gateway ready: {Volumes} volumes over nodes {Nodes}; timeout {Timeout} s, hold-down {HoldDown} s, {Connections} connections per node")]
    public static partial void Ready(ILogger logger, int volumes, string nodes, double timeout, double holdDown, int connections);
}

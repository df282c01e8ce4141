namespace Replicator.Node.Gateway;

/// <summary>How the gateway decides that a path failed and when it moves a volume between nodes.</summary>
internal sealed record GatewayOptions
{
    /// <summary>
    /// A request unanswered for this long fails its path over to the other node, if that node is connected and
    /// has not itself failed within <see cref="HoldDown"/>. With nowhere better to go the gateway keeps waiting:
    /// a slow node is better than none.
    /// </summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// The least time between two moves of a volume that are not forced by a failure: after any switch, the
    /// gateway goes back to the preferred node only once this has passed (and the node is up to date), and a
    /// timeout does not move a volume to a node that failed less than this long ago.
    /// </summary>
    public TimeSpan HoldDown { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a request waits for some node to serve it before the client is told EIO.</summary>
    public TimeSpan NoPathTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>NBD connections per node per volume; requests go to the one with fewer in flight.</summary>
    public int ConnectionsPerNode { get; init; } = 2;

    /// <summary>How long a volume's paths stay connected after its last client detached (a client that reconnects finds them up).</summary>
    public TimeSpan IdleDisconnect { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How often each node's admin API is asked for its volumes' state and preferred node.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>First wait before reconnecting to a failed node; doubled per failure in a row up to <see cref="MaxReconnectDelay"/>.</summary>
    public TimeSpan MinReconnectDelay { get; init; } = TimeSpan.FromMilliseconds(100);

    public TimeSpan MaxReconnectDelay { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How often in-flight requests are checked against <see cref="Timeout"/>: an eighth of it, between 50 and 250 ms.</summary>
    public TimeSpan WatchdogInterval =>
        TimeSpan.FromMilliseconds(Math.Clamp(Timeout.TotalMilliseconds / 8, 50, 250));

    public void Validate()
    {
        if (Timeout < TimeSpan.FromMilliseconds(100) || Timeout > TimeSpan.FromMinutes(10))
        {
            throw new ArgumentException("the timeout must be between 100 ms and 10 min");
        }

        if (HoldDown < TimeSpan.Zero || HoldDown > TimeSpan.FromHours(1))
        {
            throw new ArgumentException("the hold-down must be between 0 and 1 h");
        }

        if (ConnectionsPerNode is < 1 or > 8)
        {
            throw new ArgumentException("connections per node must be between 1 and 8");
        }
    }
}

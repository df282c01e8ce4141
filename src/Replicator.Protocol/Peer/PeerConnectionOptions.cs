namespace Replicator.Protocol.Peer;

/// <summary>Tuning of one peer connection. <see cref="Validate"/> refuses values that cannot work, with a message naming the setting.</summary>
internal sealed record PeerConnectionOptions
{
    public static PeerConnectionOptions Default { get; } = new();

    /// <summary>The peer is declared dead when nothing at all has arrived from it for this long.</summary>
    public TimeSpan KeepaliveTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How often a Ping is sent and silence is checked; by default a third of <see cref="EffectiveReadLease"/>, so two Pongs in a row may be late before reads wait.</summary>
    public TimeSpan? KeepaliveInterval { get; init; }

    /// <summary>
    /// The read lease each Ping asks for (see <c>PeerReadLease</c>): how long a Pong lets this node
    /// serve paired reads, and at most how long the first write alone after the connection broke
    /// waits. By default a quarter of <see cref="KeepaliveTimeout"/> (with an explicit interval, three of them, up to the timeout).
    /// </summary>
    public TimeSpan? ReadLease { get; init; }

    /// <summary>Requests this node may have outstanding on the connection; further senders wait for a reply.</summary>
    public int MaxRequestsInFlight { get; init; } = 256;

    /// <summary>The default <see cref="ReceiveWindow"/>: 64 MiB, eight times the payloads of a 1 MiB write at queue depth 8.</summary>
    public const long DefaultReceiveWindow = 64L << 20;

    /// <summary>
    /// Request payload bytes this node takes in from the peer at once: a request's payload counts from
    /// when its frame is read until its reply is sent. A frame beyond it waits in the socket (the
    /// receive loop stops reading), it is not buffered. Sent to the peer in the Hello, which keeps its
    /// requests in flight within it, so a peer that follows the protocol never makes this node wait.
    /// </summary>
    public long ReceiveWindow { get; init; } = DefaultReceiveWindow;

    /// <summary>The peer's receive window (from its Hello), which bounds the payloads this node keeps in flight; null for this node's own.</summary>
    public long? PeerReceiveWindow { get; init; }

    public long EffectiveSendWindow => PeerReceiveWindow is > 0 and var window ? window : ReceiveWindow;

    /// <summary>How often a request whose payload arrived corrupted is sent again before it fails.</summary>
    public int MaxChecksumRetries { get; init; } = 3;

    /// <summary>How long closing waits to say Goodbye to a peer that does not read.</summary>
    public TimeSpan GoodbyeTimeout { get; init; } = TimeSpan.FromSeconds(1);

    public PeerFrameLimits FrameLimits { get; init; } = PeerFrameLimits.Default;

    public TimeSpan EffectiveKeepaliveInterval => KeepaliveInterval ?? EffectiveReadLease / 3;

    public TimeSpan EffectiveReadLease => ReadLease ?? (KeepaliveInterval is { } interval
        ? TimeSpan.FromTicks(Math.Min(KeepaliveTimeout.Ticks, 3 * interval.Ticks))
        : KeepaliveTimeout / 4);

    public void Validate()
    {
        if (KeepaliveTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(KeepaliveTimeout), KeepaliveTimeout, "The peer keepalive timeout must be positive.");
        }

        if (EffectiveKeepaliveInterval <= TimeSpan.Zero || EffectiveKeepaliveInterval >= KeepaliveTimeout)
        {
            throw new ArgumentOutOfRangeException(nameof(KeepaliveInterval), EffectiveKeepaliveInterval, $"The peer keepalive interval must be positive and shorter than the keepalive timeout ({KeepaliveTimeout}).");
        }

        if (EffectiveReadLease <= EffectiveKeepaliveInterval || EffectiveReadLease > KeepaliveTimeout)
        {
            throw new ArgumentOutOfRangeException(nameof(ReadLease), EffectiveReadLease, $"The read lease must be longer than the keepalive interval ({EffectiveKeepaliveInterval}), or it lapses between Pings, and no longer than the keepalive timeout ({KeepaliveTimeout}).");
        }

        if (MaxRequestsInFlight <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxRequestsInFlight), MaxRequestsInFlight, "At least one peer request must be allowed in flight.");
        }

        if (ReceiveWindow < 1 << 20)
        {
            throw new ArgumentOutOfRangeException(nameof(ReceiveWindow), ReceiveWindow, "The receive window must be at least 1 MiB.");
        }

        if (MaxChecksumRetries < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxChecksumRetries), MaxChecksumRetries, "The number of checksum retries cannot be negative.");
        }

        if (GoodbyeTimeout < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(GoodbyeTimeout), GoodbyeTimeout, "The goodbye timeout cannot be negative.");
        }

        FrameLimits.Validate();
    }
}

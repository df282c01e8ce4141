namespace Replicator.Protocol.Nbd;

/// <summary>Tunables of the NBD server; the protocol's own numbers live in <see cref="NbdWire"/>.</summary>
internal sealed record NbdServerOptions
{
    /// <summary>
    /// Requests one connection may have in flight. 128 matches the deepest queue common clients use
    /// (the Linux nbd driver and qemu allow up to 128 per connection; libnbd defaults to 64).
    /// </summary>
    public int MaxInFlightRequests { get; init; } = 128;

    /// <summary>
    /// Bytes of WRITE payload and READ reply one connection may hold: two maximum-size requests,
    /// or 64 requests of 1 MiB, before the connection stops reading.
    /// </summary>
    public long MaxInFlightBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>
    /// How long a client may take from connecting to choosing an export (qemu-nbd's default handshake
    /// limit), so connections that never finish the handshake do not pile up.
    /// </summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a stop waits for connections to finish their requests before closing them.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a stop waits, after closing the connections, for device calls to notice.</summary>
    public TimeSpan AbortTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Size of each socket read into the connection's pipe. The part of a large WRITE payload that does not
    /// arrive with its header is received straight into the request's buffer instead.
    /// </summary>
    public int ReceiveBufferSize { get; init; } = 256 * 1024;

    /// <summary>Size of the pipe segments replies are written into before they reach the socket.</summary>
    public int SendBufferSize { get; init; } = 256 * 1024;

    public static NbdServerOptions Default { get; } = new();
}

using System.Net.Security;

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
    /// limit), TLS handshake included, so connections that never finish the handshake do not pile up.
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

    /// <summary>
    /// Whether clients on TCP must, may or cannot upgrade to TLS with NBD_OPT_STARTTLS (<see cref="NbdTlsMode"/>).
    /// Not <see cref="NbdTlsMode.Off"/> only with <see cref="TlsAuthentication"/>.
    /// </summary>
    public NbdTlsMode TlsMode { get; init; } = NbdTlsMode.Off;

    /// <summary>
    /// The same for clients on a Unix socket, which its file mode protects: no TLS unless asked for (QEMU and libnbd
    /// can use it there too). In-memory sessions (tests, benchmarks) follow <see cref="TlsMode"/>.
    /// </summary>
    public NbdTlsMode UnixSocketTlsMode { get; init; } = NbdTlsMode.Off;

    /// <summary>
    /// Builds the TLS options of one connection when its client sends STARTTLS: the server's certificate and whether
    /// and how client certificates are checked (<see cref="NbdTls.Server"/> builds them from certificates). Called per
    /// connection, so a renewed certificate serves the next connection without a restart.
    /// </summary>
    public Func<SslServerAuthenticationOptions>? TlsAuthentication { get; init; }

    /// <summary>
    /// Connections the server holds open at once, on all its end points together. A connection beyond it is closed
    /// as soon as it is accepted, with a log line. Each connection may hold <see cref="MaxInFlightBytes"/>, so this
    /// also bounds the memory clients can make the server hold.
    /// </summary>
    public int MaxConnections { get; init; } = 256;

    /// <summary>
    /// Connections in the transmission phase on one export at once. NBD_OPT_GO beyond it is refused with
    /// NBD_REP_ERR_POLICY and a message (the client may choose another export); NBD_OPT_EXPORT_NAME, which cannot be
    /// refused, ends the connection. 64 leaves room for eight gateways of eight connections each.
    /// </summary>
    public int MaxConnectionsPerExport { get; init; } = 64;

    /// <summary>
    /// The group Unix sockets are given to (a numeric id), so its members may connect; null keeps the group a new file
    /// gets. The socket is 0660 either way (<see cref="NbdListener.UnixSocketMode"/>).
    /// </summary>
    public int? UnixSocketGroupId { get; init; }

    public static NbdServerOptions Default { get; } = new();

    /// <summary>Throws when a setting cannot work.</summary>
    public void Validate()
    {
        if ((TlsMode != NbdTlsMode.Off || UnixSocketTlsMode != NbdTlsMode.Off) && TlsAuthentication is null)
        {
            throw new ArgumentException($"NBD TLS mode {(TlsMode != NbdTlsMode.Off ? TlsMode : UnixSocketTlsMode)} needs the TLS authentication options (a server certificate)");
        }

        if (MaxConnections < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxConnections), MaxConnections, "the NBD server must allow at least one connection");
        }

        if (MaxConnectionsPerExport < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxConnectionsPerExport), MaxConnectionsPerExport, "the NBD server must allow at least one connection per export");
        }
    }
}

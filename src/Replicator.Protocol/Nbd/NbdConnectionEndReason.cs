namespace Replicator.Protocol.Nbd;

/// <summary>Why an NBD connection ended; recorded once per session and logged.</summary>
internal enum NbdConnectionEndReason
{
    /// <summary>The session has not ended yet.</summary>
    None,
    /// <summary>The client sent NBD_OPT_ABORT (soft disconnect during the handshake).</summary>
    ClientAbort,
    /// <summary>The client sent NBD_CMD_DISC (soft disconnect during transmission).</summary>
    ClientDisconnect,
    /// <summary>The client closed the connection between two messages without a soft disconnect.</summary>
    ClientClosed,
    /// <summary>The client closed the connection in the middle of a message.</summary>
    TruncatedMessage,
    /// <summary>Reading from or writing to the transport failed (connection reset and the like).</summary>
    TransportError,
    /// <summary>An option or request did not start with the expected magic number.</summary>
    InvalidMagic,
    /// <summary>The client did not choose an export within <see cref="NbdServerOptions.HandshakeTimeout"/>.</summary>
    HandshakeTimeout,
    /// <summary>The client set handshake flags this server does not know.</summary>
    UnsupportedClientFlags,
    /// <summary>NBD_OPT_EXPORT_NAME named an export that cannot be served; that option cannot return an error.</summary>
    ExportRefused,
    /// <summary>The client chose an export with NBD_OPT_EXPORT_NAME before STARTTLS on a server that requires TLS.</summary>
    TlsRequired,
    /// <summary>The TLS handshake after STARTTLS failed: no client certificate, an untrusted one, no common protocol, bytes that are not TLS.</summary>
    TlsFailed,
    /// <summary>A WRITE announced a payload too large to skip over.</summary>
    OversizedRequest,
    /// <summary>The server stopped and the session finished its in-flight requests.</summary>
    ServerShutdown,
    /// <summary>The server stopped the session without waiting any longer.</summary>
    Aborted,
    /// <summary>A bug in the server; logged with its exception.</summary>
    InternalError,
}

using System.IO.Pipelines;
using System.Net.Security;
using System.Security.Authentication;

namespace Replicator.Protocol.Nbd;

/// <summary>
/// TLS put under an NBD connection after NBD_OPT_STARTTLS: the connection's pipe carries the TLS records and
/// this pipe carries what they protect. It works over any duplex pipe (a socket, an in-memory pipe in a test),
/// so neither the server session nor the client knows what carries it.
/// </summary>
/// <remarks>
/// Cost: received bytes are copied once more than on a plain connection (from the carrying pipe into the TLS
/// layer), and large WRITE payloads are no longer received straight into their buffer.
/// Closing: the owner completes both pipes over TLS, then <see cref="CloseAsync"/> sends the TLS close_notify
/// (unless the connection was aborted) and lets go of the TLS layer; the carrying pipe stays its owner's to complete.
/// </remarks>
internal sealed class NbdTlsTransport : IDuplexPipe, IAsyncDisposable
{
    private readonly SslStream _ssl;
    private int _disposed;

    private NbdTlsTransport(SslStream ssl, int receiveBufferSize, int sendBufferSize)
    {
        _ssl = ssl;
        Input = PipeReader.Create(ssl, new StreamPipeReaderOptions(bufferSize: receiveBufferSize, leaveOpen: true));
        Output = PipeWriter.Create(ssl, new StreamPipeWriterOptions(minimumBufferSize: sendBufferSize, leaveOpen: true));
    }

    public PipeReader Input { get; }

    public PipeWriter Output { get; }

    /// <summary>What was agreed: protocol and cipher suite, for logs.</summary>
    public string Description => $"{_ssl.SslProtocol}, {_ssl.NegotiatedCipherSuite}";

    /// <summary>The subject of the certificate the other end proved it holds, or null when it showed none.</summary>
    public string? RemoteSubject => _ssl.RemoteCertificate?.Subject;

    /// <summary>Runs the server's side of the TLS handshake over <paramref name="carrier"/>.</summary>
    /// <exception cref="AuthenticationException">The handshake failed: no certificate, an untrusted one, no common protocol.</exception>
    public static Task<NbdTlsTransport> AcceptAsync(
        IDuplexPipe carrier, SslServerAuthenticationOptions options, int receiveBufferSize, int sendBufferSize, CancellationToken cancellationToken) =>
        AuthenticateAsync(carrier, ssl => ssl.AuthenticateAsServerAsync(options, cancellationToken), receiveBufferSize, sendBufferSize);

    /// <summary>Runs the client's side of the TLS handshake over <paramref name="carrier"/>.</summary>
    /// <exception cref="AuthenticationException">The handshake failed: the server's certificate is not trusted or not for this host.</exception>
    public static Task<NbdTlsTransport> ConnectAsync(
        IDuplexPipe carrier, SslClientAuthenticationOptions options, int receiveBufferSize, int sendBufferSize, CancellationToken cancellationToken) =>
        AuthenticateAsync(carrier, ssl => ssl.AuthenticateAsClientAsync(options, cancellationToken), receiveBufferSize, sendBufferSize);

    /// <summary>
    /// Ends TLS once both pipes over it are completed: sends close_notify when <paramref name="notify"/> (the
    /// connection ended cleanly) and lets go of the TLS layer. A transport failure while notifying means the other
    /// end is gone and is not reported. Runs once; later calls return at once.
    /// </summary>
    public async ValueTask CloseAsync(bool notify)
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (notify)
        {
            try
            {
                await _ssl.ShutdownAsync();
            }
            catch (Exception exception) when (NbdReplyChannel.IsTransportFailure(exception) || exception is OperationCanceledException or InvalidOperationException)
            {
                // The other end is gone; it needs no close_notify.
            }
        }

        await _ssl.DisposeAsync();
    }

    public ValueTask DisposeAsync() => CloseAsync(notify: false);

    private static async Task<NbdTlsTransport> AuthenticateAsync(
        IDuplexPipe carrier, Func<SslStream, Task> authenticate, int receiveBufferSize, int sendBufferSize)
    {
        var ssl = new SslStream(new DuplexPipeStream(carrier), leaveInnerStreamOpen: false);
        try
        {
            await authenticate(ssl);
            return new NbdTlsTransport(ssl, receiveBufferSize, sendBufferSize);
        }
        catch
        {
            await ssl.DisposeAsync();
            throw;
        }
    }
}

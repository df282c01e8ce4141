using System.IO.Pipelines;
using System.Net.Sockets;
using System.Security.Authentication;
using Microsoft.Extensions.Logging;

namespace Replicator.Protocol.Nbd;

/// <summary>
/// One NBD connection, from the greeting to the close, over any duplex pipe: a TCP or Unix socket in
/// the server, an in-memory pipe in tests and benchmarks. It runs the handshake, then the transmission
/// phase, records why the connection ended, logs it once, and always leaves the transport completed,
/// the requests in flight finished and the export detached.
/// </summary>
/// <remarks>
/// After STARTTLS the session runs on <see cref="NbdTlsTransport"/> over its transport; from then on
/// <see cref="Current"/> is the pipe over TLS, which waking and aborting address. It changes once, under the
/// input lock, while the handshake's reader is between two reads.
/// </remarks>
internal sealed class NbdServerSession
{
    private readonly IDuplexPipe _transport;
    private readonly INbdExportCatalog _catalog;
    private readonly NbdServerOptions _options;
    private readonly NbdExportConnectionLimit? _exportLimit;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly CancellationTokenSource _aborting = new();
    private readonly Lock _inputLock = new();
    private bool _inputCompleted;
    private NbdTlsTransport? _tls;

    /// <param name="exportLimit">The server's count of connections per export; null for no limit.</param>
    public NbdServerSession(
        IDuplexPipe transport, INbdExportCatalog catalog, NbdServerOptions options, ILogger logger, string name,
        NbdExportConnectionLimit? exportLimit = null)
    {
        options.Validate();
        _transport = transport;
        _catalog = catalog;
        _options = options;
        _exportLimit = exportLimit;
        _logger = logger;
        Name = name;
    }

    /// <summary>How the connection is named in logs: its remote end point, or what the host chose.</summary>
    public string Name { get; }

    /// <summary>Why the session ended; <see cref="NbdConnectionEndReason.None"/> while it runs.</summary>
    public NbdConnectionEndReason EndReason { get; private set; }

    /// <summary>The pipe the NBD messages travel on: the transport, or TLS over it after STARTTLS.</summary>
    private IDuplexPipe Current => (IDuplexPipe?)_tls ?? _transport;

    /// <summary>Runs the connection to its end. Never throws; the reason is returned and logged.</summary>
    public async Task<NbdConnectionEndReason> RunAsync()
    {
        NbdLog.SessionStarted(_logger, Name);
        NbdNegotiatedExport? export = null;
        NbdTransmission? transmission = null;
        NbdConnectionEndReason reason;
        var detail = "";
        try
        {
            var options = new NbdOptionHandler(_transport.Output, _catalog, _logger, Name, _stopping.Token, _options.TlsMode, _exportLimit);
            using (var deadline = new CancellationTokenSource(_options.HandshakeTimeout))
            using (deadline.Token.UnsafeRegister(static session => ((NbdServerSession)session!).WakeReader(), this))
            {
                var handshake = new NbdHandshake(_transport, options, _stopping.Token, deadline.Token, () => StartTlsAsync(deadline.Token));
                export = await handshake.RunAsync();
                reason = handshake.EndReason;
            }

            if (export is not null)
            {
                var policy = export.Policy;
                NbdLog.ExportSelected(
                    _logger, Name, export.Name, export.Attachment.Device.Size, policy.TransmissionFlags,
                    policy.StructuredReplies, policy.BaseAllocation, policy.Alignment);
                transmission = new NbdTransmission(Current, export, _options, _logger, Name, WakeReader, _stopping.Token, _aborting.Token);
                reason = await transmission.RunAsync();
            }
        }
        catch (NbdProtocolException exception)
        {
            reason = exception.Reason;
            detail = exception.Message;
        }
        catch (Exception exception) when (exception is IOException or SocketException or ObjectDisposedException)
        {
            reason = NbdConnectionEndReason.TransportError;
            detail = exception.Message;
        }
        catch (OperationCanceledException) when (_aborting.IsCancellationRequested)
        {
            reason = NbdConnectionEndReason.Aborted;
        }
        catch (Exception exception)
        {
            reason = NbdConnectionEndReason.InternalError;
            detail = exception.Message;
            NbdLog.SessionFailed(_logger, Name, exception);
        }

        try
        {
            await CloseAsync(transmission, export, notify: reason is NbdConnectionEndReason.ClientAbort
                or NbdConnectionEndReason.ClientDisconnect or NbdConnectionEndReason.ServerShutdown);
        }
        catch (Exception exception)
        {
            reason = NbdConnectionEndReason.InternalError;
            detail = exception.Message;
            NbdLog.SessionFailed(_logger, Name, exception);
        }

        if (_aborting.IsCancellationRequested)
        {
            reason = NbdConnectionEndReason.Aborted;
        }

        EndReason = reason;
        NbdLog.SessionEnded(_logger, LevelOf(reason), Name, reason, detail.Length > 0 ? detail : Describe(reason));
        return reason;
    }

    /// <summary>
    /// Asks the session to end: it finishes the requests in flight, answers any further request with
    /// ESHUTDOWN (any further option with NBD_REP_ERR_SHUTDOWN), then closes. An idle connection closes at once.
    /// </summary>
    public void BeginShutdown()
    {
        _stopping.Cancel();
        WakeReader();
    }

    /// <summary>Ends the session now: device calls in flight are cancelled and nothing more is sent.</summary>
    public void Abort()
    {
        _stopping.Cancel();
        PipeWake.Flush(Current.Output);

        // Last: cancelling a receive can run the rest of the session, up to its close, on this thread.
        _aborting.Cancel();
        WakeReader();
    }

    /// <summary>
    /// Puts TLS under the connection after STARTTLS was acknowledged, within what is left of the handshake time.
    /// Any failure ends the connection: after the acknowledgement there is no going back to clear text.
    /// </summary>
    private async Task<IDuplexPipe> StartTlsAsync(CancellationToken deadline)
    {
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(deadline, _stopping.Token, _aborting.Token);
        NbdTlsTransport tls;
        try
        {
            // Built per connection, inside the try: a server certificate that cannot be read now fails this handshake only.
            var authentication = _options.TlsAuthentication!();
            tls = await NbdTlsTransport.AcceptAsync(_transport, authentication, _options.ReceiveBufferSize, _options.SendBufferSize, cancel.Token);
        }
        catch (OperationCanceledException) when (!_aborting.IsCancellationRequested && _stopping.IsCancellationRequested)
        {
            throw new NbdProtocolException(NbdConnectionEndReason.ServerShutdown, "The server stopped during the TLS handshake.");
        }
        catch (OperationCanceledException) when (!_aborting.IsCancellationRequested && deadline.IsCancellationRequested)
        {
            throw new NbdProtocolException(
                NbdConnectionEndReason.HandshakeTimeout,
                $"The client did not finish the TLS handshake within the handshake time of {_options.HandshakeTimeout.TotalSeconds:0.###} s.");
        }
        catch (Exception exception) when (exception is AuthenticationException or IOException)
        {
            throw new NbdProtocolException(NbdConnectionEndReason.TlsFailed, $"The TLS handshake failed: {Describe(exception)}");
        }

        lock (_inputLock)
        {
            _tls = tls;
        }

        NbdLog.TlsStarted(_logger, Name, tls.Description, tls.RemoteSubject ?? "none");
        return tls;
    }

    /// <param name="notify">The connection ended cleanly: a TLS connection is closed with close_notify.</param>
    private async Task CloseAsync(NbdTransmission? transmission, NbdNegotiatedExport? export, bool notify)
    {
        if (transmission is not null)
        {
            await transmission.CloseAsync();
        }
        else
        {
            await CompleteOutputAsync(Current.Output);
        }

        NbdTlsTransport? tls;
        lock (_inputLock)
        {
            _inputCompleted = true;
            tls = _tls;
        }

        await Current.Input.CompleteAsync();
        if (tls is not null)
        {
            await tls.CloseAsync(notify && !_aborting.IsCancellationRequested);
            await CompleteOutputAsync(_transport.Output);
            await _transport.Input.CompleteAsync();
        }

        export?.Attachment.Dispose();
    }

    /// <summary>Completes an output that the transmission phase did not; an aborted connection's without sending more.</summary>
    private async Task CompleteOutputAsync(PipeWriter output)
    {
        try
        {
            await output.CompleteAsync(_aborting.IsCancellationRequested ? new IOException("the NBD connection was aborted") : null);
        }
        catch (Exception exception) when (NbdReplyChannel.IsTransportFailure(exception))
        {
            NbdLog.ReplyFailed(_logger, Name, exception);
        }
    }

    /// <summary>Makes a pending read return so the reader can look at the stop flags; never after the input completed.</summary>
    private void WakeReader()
    {
        lock (_inputLock)
        {
            if (!_inputCompleted)
            {
                Current.Input.CancelPendingRead();
            }
        }
    }

    /// <summary>The exception's message and those of its causes: the TLS layer puts the reason a certificate was refused inside.</summary>
    private static string Describe(Exception exception)
    {
        var text = exception.Message;
        for (var inner = exception.InnerException; inner is not null; inner = inner.InnerException)
        {
            text += $" ({inner.Message})";
        }

        return text;
    }

    private static LogLevel LevelOf(NbdConnectionEndReason reason) => reason switch
    {
        NbdConnectionEndReason.ClientAbort or NbdConnectionEndReason.ClientDisconnect
            or NbdConnectionEndReason.ServerShutdown => LogLevel.Information,
        NbdConnectionEndReason.InternalError => LogLevel.Error,
        _ => LogLevel.Warning,
    };

    private static string Describe(NbdConnectionEndReason reason) => reason switch
    {
        NbdConnectionEndReason.ClientAbort => "The client aborted the handshake.",
        NbdConnectionEndReason.ClientDisconnect => "The client disconnected.",
        NbdConnectionEndReason.ClientClosed => "The client closed the connection without a disconnect request.",
        NbdConnectionEndReason.TruncatedMessage => "The client closed the connection in the middle of a message.",
        NbdConnectionEndReason.ServerShutdown => "The server is stopping.",
        NbdConnectionEndReason.Aborted => "The server stopped the connection.",
        _ => "",
    };
}

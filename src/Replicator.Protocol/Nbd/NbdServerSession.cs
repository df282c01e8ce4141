using System.IO.Pipelines;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Replicator.Protocol.Nbd;

/// <summary>
/// One NBD connection, from the greeting to the close, over any duplex pipe: a TCP or Unix socket in
/// the server, an in-memory pipe in tests and benchmarks. It runs the handshake, then the transmission
/// phase, records why the connection ended, logs it once, and always leaves the transport completed,
/// the requests in flight finished and the export detached.
/// </summary>
internal sealed class NbdServerSession
{
    private readonly IDuplexPipe _transport;
    private readonly INbdExportCatalog _catalog;
    private readonly NbdServerOptions _options;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly CancellationTokenSource _aborting = new();
    private readonly Lock _inputLock = new();
    private bool _inputCompleted;

    public NbdServerSession(IDuplexPipe transport, INbdExportCatalog catalog, NbdServerOptions options, ILogger logger, string name)
    {
        _transport = transport;
        _catalog = catalog;
        _options = options;
        _logger = logger;
        Name = name;
    }

    /// <summary>How the connection is named in logs: its remote end point, or what the host chose.</summary>
    public string Name { get; }

    /// <summary>Why the session ended; <see cref="NbdConnectionEndReason.None"/> while it runs.</summary>
    public NbdConnectionEndReason EndReason { get; private set; }

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
            var options = new NbdOptionHandler(_transport.Output, _catalog, _logger, Name, _stopping.Token);
            using (var deadline = new CancellationTokenSource(_options.HandshakeTimeout))
            using (deadline.Token.UnsafeRegister(static session => ((NbdServerSession)session!).WakeReader(), this))
            {
                var handshake = new NbdHandshake(_transport.Input, _transport.Output, options, _stopping.Token, deadline.Token);
                export = await handshake.RunAsync();
                reason = handshake.EndReason;
            }

            if (export is not null)
            {
                var policy = export.Policy;
                NbdLog.ExportSelected(
                    _logger, Name, export.Name, export.Attachment.Device.Size, policy.TransmissionFlags,
                    policy.StructuredReplies, policy.BaseAllocation, policy.Alignment);
                transmission = new NbdTransmission(_transport, export, _options, _logger, Name, WakeReader, _stopping.Token, _aborting.Token);
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
            await CloseAsync(transmission, export);
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
        PipeWake.Flush(_transport.Output);

        // Last: cancelling a receive can run the rest of the session, up to its close, on this thread.
        _aborting.Cancel();
        WakeReader();
    }

    private async Task CloseAsync(NbdTransmission? transmission, NbdNegotiatedExport? export)
    {
        if (transmission is not null)
        {
            await transmission.CloseAsync();
        }
        else
        {
            await CompleteOutputAsync();
        }

        lock (_inputLock)
        {
            _inputCompleted = true;
        }

        await _transport.Input.CompleteAsync();
        export?.Attachment.Dispose();
    }

    /// <summary>Completes the output of a connection that never reached transmission; an aborted one without sending more.</summary>
    private async Task CompleteOutputAsync()
    {
        try
        {
            await _transport.Output.CompleteAsync(_aborting.IsCancellationRequested ? new IOException("the NBD connection was aborted") : null);
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
                _transport.Input.CancelPendingRead();
            }
        }
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

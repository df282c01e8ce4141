using System.IO.Pipelines;

namespace Replicator.Protocol.Nbd;

/// <summary>
/// The handshake phase, fixed newstyle: the greeting, the client flags, then options until the client
/// chooses an export or aborts. This class owns the reading (framing, skipping oversized option data);
/// <see cref="NbdOptionHandler"/> gives each option its meaning. After an acknowledged STARTTLS the caller's
/// <c>startTls</c> puts TLS under the connection and the options go on over the pipe it returns.
/// </summary>
internal sealed class NbdHandshake
{
    private readonly NbdOptionHandler _options;
    private readonly Func<Task<IDuplexPipe>> _startTls;
    private readonly PipeWriter _output;
    private PipeReader _input;
    private readonly CancellationToken _stopping;
    private readonly CancellationToken _deadline;
    private bool _haveClientFlags;
    private long _skip;

    /// <param name="stopping">Fires when the server stops; a pending read must then be cancelled by the caller.</param>
    /// <param name="deadline">Fires when the handshake took too long; likewise.</param>
    /// <param name="startTls">
    /// Runs the TLS handshake over the connection once STARTTLS is acknowledged and returns the pipe over TLS; called
    /// when the input holds nothing past STARTTLS that this class has consumed.
    /// </param>
    public NbdHandshake(
        IDuplexPipe transport, NbdOptionHandler options, CancellationToken stopping, CancellationToken deadline, Func<Task<IDuplexPipe>> startTls)
    {
        _input = transport.Input;
        _output = transport.Output;
        _options = options;
        _startTls = startTls;
        _stopping = stopping;
        _deadline = deadline;
    }

    /// <summary>Why the handshake ended without an export; meaningful when <see cref="RunAsync"/> returns null.</summary>
    public NbdConnectionEndReason EndReason { get; private set; }

    /// <summary>Runs the handshake. Returns the chosen export, or null when the connection is to end.</summary>
    /// <exception cref="NbdProtocolException">The client broke the protocol in a way that ends the connection.</exception>
    public async Task<NbdNegotiatedExport?> RunAsync()
    {
        NbdOptionReplies.WriteGreeting(_output);
        await _output.FlushAsync();

        while (true)
        {
            var result = await _input.ReadAsync();
            var buffer = result.Buffer;
            var examined = buffer.End;
            var startTls = false;
            try
            {
                if (result.IsCanceled && _stopping.IsCancellationRequested)
                {
                    return End(NbdConnectionEndReason.ServerShutdown);
                }

                if (result.IsCanceled && _deadline.IsCancellationRequested)
                {
                    return End(NbdConnectionEndReason.HandshakeTimeout);
                }

                while (true)
                {
                    if (_skip > 0)
                    {
                        _skip -= NbdFrameReader.Skip(ref buffer, _skip);
                        if (_skip > 0)
                        {
                            break;
                        }

                        continue;
                    }

                    if (!_haveClientFlags)
                    {
                        if (!NbdFrameReader.TryReadClientFlags(ref buffer, out var flags))
                        {
                            break;
                        }

                        _options.AcceptClientFlags(flags);
                        _haveClientFlags = true;
                        continue;
                    }

                    if (!NbdFrameReader.TryReadOption(ref buffer, NbdWire.MaxOptionDataLength, out var header, out var data))
                    {
                        break;
                    }

                    if (header.Length > NbdWire.MaxOptionDataLength)
                    {
                        _skip = header.Length;
                        await _options.RefuseOversizedAsync(header);
                        continue;
                    }

                    switch (await _options.HandleAsync(header, data))
                    {
                        case NbdOptionOutcome.Abort:
                            return End(NbdConnectionEndReason.ClientAbort);
                        case NbdOptionOutcome.Transmission:
                            examined = buffer.Start;
                            return _options.Export;
                        case NbdOptionOutcome.StartTls:
                            examined = buffer.Start;
                            startTls = true;
                            break;
                    }

                    if (startTls)
                    {
                        break;
                    }
                }

                if (!startTls && result.IsCompleted)
                {
                    return End(buffer.IsEmpty && _skip == 0 ? NbdConnectionEndReason.ClientClosed : NbdConnectionEndReason.TruncatedMessage);
                }
            }
            finally
            {
                _input.AdvanceTo(buffer.Start, examined);
            }

            if (startTls)
            {
                // Whatever the client sent after STARTTLS stays in the input: it is the start of its TLS handshake.
                var tls = await _startTls();
                _input = tls.Input;
                _options.TlsStarted(tls.Output);
            }
        }
    }

    private NbdNegotiatedExport? End(NbdConnectionEndReason reason)
    {
        EndReason = reason;
        return null;
    }
}

using System.IO.Pipelines;

namespace Replicator.Protocol.Nbd;

/// <summary>
/// The handshake phase, fixed newstyle: the greeting, the client flags, then options until the client
/// chooses an export or aborts. This class owns the reading (framing, skipping oversized option data);
/// <see cref="NbdOptionHandler"/> gives each option its meaning.
/// </summary>
internal sealed class NbdHandshake
{
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly NbdOptionHandler _options;
    private readonly CancellationToken _stopping;
    private readonly CancellationToken _deadline;
    private bool _haveClientFlags;
    private long _skip;

    /// <param name="stopping">Fires when the server stops; a pending read must then be cancelled by the caller.</param>
    /// <param name="deadline">Fires when the handshake took too long; likewise.</param>
    public NbdHandshake(PipeReader input, PipeWriter output, NbdOptionHandler options, CancellationToken stopping, CancellationToken deadline)
    {
        _input = input;
        _output = output;
        _options = options;
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
                    }
                }

                if (result.IsCompleted)
                {
                    return End(buffer.IsEmpty && _skip == 0 ? NbdConnectionEndReason.ClientClosed : NbdConnectionEndReason.TruncatedMessage);
                }
            }
            finally
            {
                _input.AdvanceTo(buffer.Start, examined);
            }
        }
    }

    private NbdNegotiatedExport? End(NbdConnectionEndReason reason)
    {
        EndReason = reason;
        return null;
    }
}

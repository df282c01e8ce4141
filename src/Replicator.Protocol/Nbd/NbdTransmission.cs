using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Replicator.Core.Devices;

namespace Replicator.Protocol.Nbd;

/// <summary>
/// The transmission phase: one reader takes requests off the wire and never waits for a device call.
/// </summary>
/// <remarks>
/// Concurrency: the reader parses a header, validates it (a refused request is answered at once and a
/// refused WRITE's payload skipped), then asks <see cref="NbdInFlightLimiter"/> for room. While the
/// connection is at its limit the reader stops reading, which pushes back on the client through the
/// transport; a refused request takes room too, until its error is written, so a client that never reads
/// its replies cannot make them pile up. A WRITE's payload is copied from the pipe into one pooled buffer
/// as it arrives, so the pipe never holds a whole 32 MiB payload; when the pipe runs dry with a large
/// part still to come and the transport can receive directly (<see cref="IDirectReceive"/>, a socket),
/// the rest is received straight into that buffer. Each admitted request then runs on its own
/// (<see cref="NbdCommandExecutor"/>) and hands its reply to <see cref="NbdReplyChannel"/> when done, so
/// replies leave in completion order and the room is given back once the reply is in the transport; the
/// replies of requests that completed at once are written by the reader and sent together before it
/// waits for more input (<see cref="NbdReplyChannel.FlushFromReader"/>). NBD_CMD_DISC, the end of the
/// stream and a server stop all end the reading; <see cref="CloseAsync"/> then waits for the requests in
/// flight before the transport closes.
/// </remarks>
internal sealed class NbdTransmission
{
    /// <summary>
    /// The least remainder of a WRITE payload received straight into its buffer: below it the pipe's next
    /// read, which may bring the following requests too, costs no more receive calls.
    /// </summary>
    private const int DirectReceiveMinimum = 64 * 1024;

    private readonly PipeReader _input;
    private readonly IDirectReceive? _direct;
    private readonly IBlockDevice _device;
    private readonly NbdTransmissionPolicy _policy;
    private readonly NbdInFlightLimiter _limiter;
    private readonly NbdReplyChannel _replies;
    private readonly NbdCommandExecutor _executor;
    private readonly ILogger _logger;
    private readonly string _connection;
    private readonly Action _wakeReader;
    private readonly CancellationToken _stopping;
    private readonly CancellationToken _aborting;
    private NbdRequest _pendingWrite;
    private byte[]? _pendingPayload;
    private int _pendingFilled;
    private long _skip;

    public NbdTransmission(
        IDuplexPipe transport, NbdNegotiatedExport export, NbdServerOptions options,
        ILogger logger, string connection, Action wakeReader, CancellationToken stopping, CancellationToken aborting)
    {
        _input = transport.Input;
        _direct = transport as IDirectReceive;
        _device = export.Attachment.Device;
        _policy = export.Policy;
        _limiter = new NbdInFlightLimiter(options.MaxInFlightRequests, options.MaxInFlightBytes);
        _replies = new NbdReplyChannel(transport.Output, OnReplyWritten, logger, connection);
        _executor = new NbdCommandExecutor(_device, _policy, _replies, logger, connection, aborting);
        _logger = logger;
        _connection = connection;
        _wakeReader = wakeReader;
        _stopping = stopping;
        _aborting = aborting;
        aborting.UnsafeRegister(static limiter => ((NbdInFlightLimiter)limiter!).Cancel(), _limiter);
    }

    /// <summary>Reads and dispatches requests until the connection is to end; returns why.</summary>
    /// <exception cref="NbdProtocolException">The client broke the protocol in a way that ends the connection.</exception>
    public async Task<NbdConnectionEndReason> RunAsync()
    {
        while (true)
        {
            if (!_input.TryRead(out var result))
            {
                _replies.FlushFromReader();
                result = await _input.ReadAsync();
            }

            var buffer = result.Buffer;
            var examined = buffer.End;
            var receiveDirect = false;

            // What the requests of this read send on (a gateway's requests to a node) leaves together
            // when the batch ends, before the reader waits for anything.
            SendBatch.Enter();
            try
            {
                if (result.IsCanceled && _aborting.IsCancellationRequested)
                {
                    return NbdConnectionEndReason.Aborted;
                }

                while (true)
                {
                    if (_pendingPayload is not null)
                    {
                        var length = (int)_pendingWrite.Length;
                        _pendingFilled += NbdFrameReader.ReadPayload(ref buffer, _pendingPayload.AsSpan(_pendingFilled, length - _pendingFilled));
                        if (_pendingFilled < length)
                        {
                            receiveDirect = _direct is not null && length - _pendingFilled >= DirectReceiveMinimum;
                            break;
                        }

                        var payload = _pendingPayload;
                        _pendingPayload = null;
                        _executor.Start(_pendingWrite, payload);
                        continue;
                    }

                    if (_skip > 0)
                    {
                        _skip -= NbdFrameReader.Skip(ref buffer, _skip);
                        if (_skip > 0)
                        {
                            break;
                        }

                        continue;
                    }

                    if (!NbdFrameReader.TryReadRequest(ref buffer, out var request))
                    {
                        break;
                    }

                    if (request.Type == NbdWire.CmdDisc)
                    {
                        examined = buffer.Start;
                        return NbdConnectionEndReason.ClientDisconnect;
                    }

                    var admitted = AdmitAsync(request);
                    if (admitted.IsCompleted)
                    {
                        admitted.GetAwaiter().GetResult();
                        continue;
                    }

                    SendBatch.Exit();
                    try
                    {
                        await admitted;
                    }
                    finally
                    {
                        SendBatch.Enter();
                    }
                }

                if (_stopping.IsCancellationRequested && _limiter.Count == 0 && _skip == 0)
                {
                    return NbdConnectionEndReason.ServerShutdown;
                }

                if (result.IsCompleted)
                {
                    return buffer.IsEmpty && _pendingPayload is null && _skip == 0
                        ? NbdConnectionEndReason.ClientClosed
                        : NbdConnectionEndReason.TruncatedMessage;
                }
            }
            finally
            {
                SendBatch.Exit();
                _input.AdvanceTo(buffer.Start, examined);
            }

            if (receiveDirect && !await ReceivePayloadAsync())
            {
                return NbdConnectionEndReason.TruncatedMessage;
            }
        }
    }

    /// <summary>
    /// Receives the rest of the pending WRITE payload straight from the transport (the pipe is empty) and
    /// starts the write; false when the stream ends first.
    /// </summary>
    private async ValueTask<bool> ReceivePayloadAsync()
    {
        _replies.FlushFromReader();
        var length = (int)_pendingWrite.Length;
        if (!await _direct!.ReceiveExactlyAsync(_pendingPayload.AsMemory(_pendingFilled, length - _pendingFilled), _aborting))
        {
            return false;
        }

        _pendingFilled = length;
        var payload = _pendingPayload!;
        _pendingPayload = null;
        _executor.Start(_pendingWrite, payload);
        return true;
    }

    /// <summary>
    /// Waits for every request in flight to queue its reply and for the replies to be written (or dropped,
    /// if the client is gone), gives back the buffer of a WRITE whose payload never fully arrived, and
    /// completes the transport's output. Call once the reading has ended.
    /// </summary>
    public async Task CloseAsync()
    {
        if (_pendingPayload is not null)
        {
            ArrayPool<byte>.Shared.Return(_pendingPayload);
            _pendingPayload = null;
            _limiter.Release(NbdCommandExecutor.BufferedBytes(_pendingWrite));
        }

        await _executor.CompleteAsync();
        await _replies.CompleteAsync();
    }

    /// <summary>Validates a request; refuses it, or admits it and starts it (a WRITE once its payload is in).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask AdmitAsync(NbdRequest request)
    {
        if (request.PayloadLength > NbdWire.MaxSkippableWriteLength)
        {
            NbdProtocolException.Throw(
                NbdConnectionEndReason.OversizedRequest, $"WRITE of {request.Length} bytes is too large to read or skip");
        }

        string? reason;
        var error = _stopping.IsCancellationRequested
            ? Refusal(NbdWire.EShutdown, "the server is shutting down", out reason)
            : NbdRequestValidator.Validate(request, _policy, _device.Size, out reason);
        if (error != NbdWire.Success)
        {
            NbdLog.RequestRefused(
                _logger, _connection, NbdErrors.CommandName(request.Type), NbdErrors.ErrorName(error), reason!,
                request.Handle, request.Offset, request.Length, request.Flags);
            await AcquireAsync(0);
            _executor.Refuse(request.Handle, error, reason!);
            _skip = request.PayloadLength;
            return;
        }

        await AcquireAsync(NbdCommandExecutor.BufferedBytes(request));
        if (request.PayloadLength == 0)
        {
            _executor.Start(request, null);
            return;
        }

        _pendingWrite = request;
        _pendingPayload = ArrayPool<byte>.Shared.Rent((int)request.PayloadLength);
        _pendingFilled = 0;
    }

    /// <summary>Takes room in the budget; before waiting for it, sends the replies the reader holds, which may be what frees it.</summary>
    private ValueTask AcquireAsync(long bytes)
    {
        var room = _limiter.AcquireAsync(bytes);
        if (!room.IsCompleted)
        {
            _replies.FlushFromReader();
        }

        return room;
    }

    /// <summary>
    /// A reply is in the transport: its request leaves the budget. When it was the last one and the server
    /// is stopping, the reader waiting for more input can end the connection now.
    /// </summary>
    private void OnReplyWritten(long admitted)
    {
        if (_limiter.Release(admitted) && _stopping.IsCancellationRequested)
        {
            _wakeReader();
        }
    }

    private static uint Refusal(uint error, string why, out string? reason)
    {
        reason = why;
        return error;
    }
}

using System.Net.Sockets;
using Replicator.Core.Hashing;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Peer;

internal sealed partial class PeerConnection
{
    /// <summary>
    /// Reads frames until the connection ends and returns why it did. Processing a frame never
    /// waits (see the class remarks), so the loop only awaits the next read.
    /// </summary>
    private async Task<PeerConnectionEnd> ReceiveLoopAsync()
    {
        var input = _transport.Input;
        try
        {
            while (true)
            {
                var result = await input.ReadAsync();
                var buffer = result.Buffer;
                try
                {
                    if (result.IsCanceled)
                    {
                        return End!;
                    }

                    if (!buffer.IsEmpty)
                    {
                        MarkReceived();
                    }

                    while (PeerFrameReader.TryReadFrame(ref buffer, _options.FrameLimits, out var frame))
                    {
                        var window = 0L;
                        if (frame.Payload is { } payload && PeerRequestValidator.IsRequest(frame.Header.BodyCase))
                        {
                            window = await TakeReceiveWindowAsync(payload.Length, frame.Header);
                        }

                        if (ProcessFrame(frame, window) is { } end)
                        {
                            return end;
                        }
                    }

                    if (result.IsCompleted)
                    {
                        return buffer.IsEmpty
                            ? new PeerConnectionEnd(PeerConnectionEndReason.RemoteClosed, "the peer closed the connection")
                            : new PeerConnectionEnd(PeerConnectionEndReason.RemoteClosed, $"the peer closed the connection in the middle of a frame ({buffer.Length} bytes of it received)");
                    }
                }
                finally
                {
                    input.AdvanceTo(buffer.Start, buffer.End);
                }
            }
        }
        catch (PeerProtocolException exception)
        {
            return new PeerConnectionEnd(PeerConnectionEndReason.ProtocolError, exception.Message, exception);
        }
        catch (OperationCanceledException) when (_closing.IsCancellationRequested)
        {
            return End!;
        }
        catch (Exception exception) when (exception is IOException or SocketException or ObjectDisposedException)
        {
            return End ?? new PeerConnectionEnd(PeerConnectionEndReason.TransportError, $"receiving from the peer failed: {exception.Message}", exception);
        }
        catch (Exception exception)
        {
            return new PeerConnectionEnd(PeerConnectionEndReason.InternalError, $"the receive loop failed: {exception.Message}", exception);
        }
    }

    /// <summary>
    /// Room in the receive window for a request's payload, waiting (the loop reads nothing meanwhile)
    /// while the peer has more in flight than the window it was told.
    /// </summary>
    private async ValueTask<long> TakeReceiveWindowAsync(int length, Envelope header)
    {
        if (_receiveWindow.TryTake(length))
        {
            return _receiveWindow.Cost(length);
        }

        Log.ReceiveWindowFull(_logger, PeerName, _receiveWindow.InUse, _receiveWindow.Capacity, header.BodyCase, length);
        return await _receiveWindow.TakeAsync(length, _closing.Token);
    }

    /// <summary>Acts on one frame, taking ownership of its payload and of <paramref name="window"/> (its share of the receive window); returns how the connection ends when the frame ends it.</summary>
    private PeerConnectionEnd? ProcessFrame(PeerFrame frame, long window)
    {
        var header = frame.Header;
        switch (header.BodyCase)
        {
            case Envelope.BodyOneofCase.Reply:
                CompleteRequest(header, frame.Payload);
                return null;
            case Envelope.BodyOneofCase.Ping:
                RejectPayload(frame);
                AnswerPing(header.Ping);
                return null;
            case Envelope.BodyOneofCase.Pong:
                RejectPayload(frame);
                OnPong(header.Pong);
                return null;
            case Envelope.BodyOneofCase.Goodbye:
                RejectPayload(frame);
                ReadLease.PeerReleased();
                return new PeerConnectionEnd(PeerConnectionEndReason.RemoteClosed, $"the peer said goodbye: {header.Goodbye.Reason}");
            case Envelope.BodyOneofCase.Hello or Envelope.BodyOneofCase.HelloAccepted or Envelope.BodyOneofCase.Refused:
                frame.Payload?.Dispose();
                PeerProtocolException.Throw(PeerProtocolError.UnexpectedMessage, $"The peer sent a handshake message ({header.BodyCase}) after the handshake.");
                return null;
            default:
                StartRequest(frame, window);
                return null;
        }
    }

    private static void RejectPayload(PeerFrame frame)
    {
        if (frame.Payload is { } payload)
        {
            payload.Dispose();
            PeerProtocolException.Throw(PeerProtocolError.UnexpectedMessage, $"The peer sent a {frame.Header.BodyCase} with a {payload.Length}-byte payload; it takes none.");
        }
    }

    private void CompleteRequest(Envelope header, PeerPayload? payload)
    {
        if (!_pending.TryRemove(header.RequestId, out var pending))
        {
            Log.ReplyWithoutRequest(_logger, PeerName, header.RequestId);
            payload?.Dispose();
            return;
        }

        PeerReply reply;
        if (payload is not null && CheckPayload(header, payload) is { } problem)
        {
            Log.ReplyPayloadCorrupted(_logger, PeerName, header.RequestId, payload.Length, problem);
            payload.Dispose();
            reply = new PeerReply(ReplyStatus.ChecksumMismatch, "the reply's payload arrived corrupted", null);
        }
        else
        {
            reply = new PeerReply(header.Reply.Status, header.Reply.Message, payload, header.Reply);
        }

        if (!pending.TrySetResult(reply))
        {
            reply.Dispose();
        }
    }

    /// <summary>Checks an incoming request at the edge and, when it passes, hands it to the handler (with its share of the receive window).</summary>
    private void StartRequest(PeerFrame frame, long window)
    {
        var header = frame.Header;
        if (header.RequestId == 0)
        {
            _receiveWindow.Release(window);
            frame.Payload?.Dispose();
            PeerProtocolException.Throw(PeerProtocolError.UnexpectedMessage, $"The peer sent a request ({header.BodyCase}) without a request id.");
        }

        if (frame.Payload is { } payload && CheckPayload(header, payload) is { } problem)
        {
            Log.RequestPayloadCorrupted(_logger, PeerName, header.BodyCase, header.RequestId, payload.Length, problem);
            _receiveWindow.Release(window);
            payload.Dispose();
            _ = SendReplyInBackgroundAsync(header.RequestId, ReplyStatus.ChecksumMismatch, "the payload arrived corrupted and was not applied; send it again");
            return;
        }

        if (PeerRequestValidator.Validate(header, frame.Payload?.Data.Length ?? 0, _options.FrameLimits) is { } refusal)
        {
            Log.RequestRefused(_logger, PeerName, header.BodyCase, header.RequestId, refusal.Status, refusal.Message);
            _receiveWindow.Release(window);
            frame.Payload?.Dispose();
            _ = SendReplyInBackgroundAsync(header.RequestId, refusal.Status, refusal.Message);
            return;
        }

        _ = DispatchAsync(new PeerIncomingRequest(this, header, frame.Payload, window));
    }

    /// <summary>
    /// Checks a payload against its checksum, or against its block checksums when it carries them (then splits it
    /// into data and checksums); returns what is wrong with it, or null.
    /// </summary>
    private static string? CheckPayload(Envelope header, PeerPayload payload)
    {
        if (header.BlockChecksumSize == 0)
        {
            var computed = ContentHash.Of(payload.Memory.Span);
            return computed == header.PayloadChecksum ? null : $"sent 0x{header.PayloadChecksum:X16}, computed 0x{computed:X16}";
        }

        const int perBlock = PeerWire.BlockChecksumSize + sizeof(ulong);
        if (header.BlockChecksumSize != PeerWire.BlockChecksumSize || payload.Length % perBlock != 0)
        {
            return $"{payload.Length} bytes are not whole blocks of {header.BlockChecksumSize} bytes with their checksums";
        }

        var dataLength = payload.Length / perBlock * PeerWire.BlockChecksumSize;
        var span = payload.Memory.Span;
        var bad = BlockChecksum.FirstMismatch(span[..dataLength], span[dataLength..]);
        if (bad >= 0)
        {
            return $"block {bad} does not match its block checksum";
        }

        payload.DataLength = dataLength;
        return null;
    }

    /// <summary>Runs the handler for one request and makes sure the request gets exactly one reply.</summary>
    private async Task DispatchAsync(PeerIncomingRequest request)
    {
        Interlocked.Increment(ref _handlersRunning);
        try
        {
            await _handler.HandleAsync(request, _closing.Token);
            if (!request.HasReplied)
            {
                Log.HandlerDidNotReply(_logger, PeerName, request.Header.BodyCase, request.RequestId);
                await request.ReplyAsync(ReplyStatus.IoError, "the node did not answer the request");
            }
        }
        catch (Exception exception) when (exception is PeerConnectionClosedException || (exception is OperationCanceledException && _closing.IsCancellationRequested))
        {
        }
        catch (Exception exception)
        {
            Log.HandlerFailed(_logger, PeerName, request.Header.BodyCase, request.RequestId, exception);
            await ReplyToFailedRequestAsync(request, exception);
        }
        finally
        {
            request.ReleasePayload();
            ReleaseHandlerHold();
        }
    }

    private static async Task ReplyToFailedRequestAsync(PeerIncomingRequest request, Exception exception)
    {
        if (request.HasReplied)
        {
            return;
        }

        try
        {
            await request.ReplyAsync(ReplyStatus.IoError, $"the node failed the request: {exception.Message}");
        }
        catch (PeerConnectionClosedException)
        {
        }
    }
}

using System.Buffers;
using System.Net.Sockets;

namespace Replicator.Protocol.Nbd.Client;

/// <summary>The receiver of a client connection: parses replies and completes the requests they answer.</summary>
internal sealed partial class NbdClient
{
    private NbdClientRequest? _receiving;
    private int _receivePosition;
    private int _receiveRemaining;
    private bool _receiveDone;

    private async Task ReceiveLoopAsync()
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
                        return;
                    }

                    // The requests these replies complete run on here; the replies a gateway forwards
                    // for them leave together when the batch ends.
                    SendBatch.Enter();
                    try
                    {
                        while (ProcessReply(ref buffer))
                        {
                        }
                    }
                    finally
                    {
                        SendBatch.Exit();
                    }

                    if (result.IsCompleted)
                    {
                        var clean = buffer.IsEmpty && _receiving is null;
                        End(_disconnecting && clean ? NbdClientEndReason.Disconnected : NbdClientEndReason.ServerClosed,
                            clean ? "the server closed the connection" : "the server closed the connection in the middle of a reply");
                        return;
                    }
                }
                finally
                {
                    input.AdvanceTo(buffer.Start, buffer.End);
                }
            }
        }
        catch (NbdReplyProtocolException exception)
        {
            End(NbdClientEndReason.ProtocolError, exception.Message);
        }
        catch (Exception exception) when (IsTransportFailure(exception))
        {
            End(NbdClientEndReason.TransportError, exception.Message);
        }
        catch (Exception exception)
        {
            NbdClientLog.ReceiveFailed(_logger, Name, exception);
            End(NbdClientEndReason.ProtocolError, "the reply could not be processed: " + exception.Message);
        }
    }

    /// <summary>Consumes one reply (or part of a READ's data); false when the buffer holds nothing more to process.</summary>
    private bool ProcessReply(ref ReadOnlySequence<byte> buffer)
    {
        if (_receiving is { } reading)
        {
            var moved = NbdFrameReader.ReadPayload(ref buffer, reading.Destination.Span.Slice(_receivePosition, _receiveRemaining));
            _receivePosition += moved;
            _receiveRemaining -= moved;
            if (_receiveRemaining > 0)
            {
                return false;
            }

            _receiving = null;
            if (_receiveDone)
            {
                Finish(reading);
            }

            return true;
        }

        if (!NbdReplyReader.TryReadReply(ref buffer, out var reply))
        {
            return false;
        }

        var request = Find(reply.Cookie);
        switch (reply.Type)
        {
            case NbdReplyType.Simple when reply.Error != NbdWire.Success:
                request.Error = reply.Error;
                Finish(request);
                break;
            case NbdReplyType.Simple when request.Type == NbdWire.CmdRead && request.Length > 0:
                request.Covered = request.Length;
                StartReceiving(request, 0, (int)request.Length, done: true);
                break;
            case NbdReplyType.Simple or NbdReplyType.None:
                Finish(request);
                break;
            case NbdReplyType.OffsetData:
                StartReceiving(request, ReadRange(request, reply), (int)reply.Length, reply.Done);
                break;
            case NbdReplyType.OffsetHole:
                request.Destination.Span.Slice(ReadRange(request, reply), (int)reply.Length).Clear();
                FinishIfDone(request, reply.Done);
                break;
            case NbdReplyType.BlockStatus:
                if (request.Type != NbdWire.CmdBlockStatus)
                {
                    NbdReplyProtocolException.Throw($"BLOCK_STATUS chunk for a {NbdErrors.CommandName(request.Type)}");
                }

                if (reply.ContextId == Export.BaseAllocationContextId && request.Covered == 0)
                {
                    request.Covered = NbdReplyReader.AppendExtents(reply.Payload, request.Extents!, request.Length);
                }

                FinishIfDone(request, reply.Done);
                break;
            case NbdReplyType.Error:
                if (request.Error == NbdWire.Success)
                {
                    request.Error = reply.Error;
                    request.ErrorMessage = reply.Message;
                }

                FinishIfDone(request, reply.Done);
                break;
        }

        return true;
    }

    /// <summary>Where a READ chunk's bytes go in the request's buffer; a chunk outside the request is a protocol error.</summary>
    private static int ReadRange(NbdClientRequest request, in NbdReply reply)
    {
        if (request.Type != NbdWire.CmdRead
            || reply.Offset < request.Offset
            || reply.Offset + reply.Length > request.Offset + request.Length)
        {
            NbdReplyProtocolException.Throw(
                $"{reply.Type} chunk of {reply.Length} bytes at {reply.Offset} for {NbdErrors.CommandName(request.Type)} of {request.Length} at {request.Offset}");
        }

        request.Covered += reply.Length;
        return (int)(reply.Offset - request.Offset);
    }

    private void StartReceiving(NbdClientRequest request, int position, int length, bool done)
    {
        _receiving = request;
        _receivePosition = position;
        _receiveRemaining = length;
        _receiveDone = done;
    }

    private static void FinishIfDone(NbdClientRequest request, bool done)
    {
        if (done)
        {
            Finish(request);
        }
    }

    /// <summary>The last reply of a request is in; a successful READ must have covered its range, a BLOCK_STATUS described some of it.</summary>
    private static void Finish(NbdClientRequest request)
    {
        if (request.Error == NbdWire.Success)
        {
            if (request.Type == NbdWire.CmdRead && request.Covered != request.Length)
            {
                NbdReplyProtocolException.Throw($"the reply to a READ of {request.Length} bytes covered {request.Covered}");
            }

            if (request.Type == NbdWire.CmdBlockStatus && request.Covered == 0)
            {
                NbdReplyProtocolException.Throw("the reply to BLOCK_STATUS described no base:allocation extent");
            }
        }

        request.PartDone();
    }

    private NbdClientRequest Find(ulong cookie)
    {
        var slot = (uint)cookie;
        if (slot < (uint)_slots.Length)
        {
            var request = _slots[slot];
            if (request.Cookie == cookie && request.InFlight)
            {
                return request;
            }
        }

        NbdReplyProtocolException.Throw($"reply for cookie 0x{cookie:x16}, which is not in flight");
        return null!;
    }

    private static bool IsTransportFailure(Exception exception) =>
        exception is IOException or SocketException or ObjectDisposedException or OperationCanceledException or InvalidOperationException;
}

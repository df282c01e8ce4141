using System.Buffers;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Replicator.Core.Devices;

namespace Replicator.Protocol.Nbd;

/// <summary>
/// Runs validated requests against the device, each on its own, and hands each one's reply to the
/// <see cref="NbdReplyChannel"/> when its device call ends, so replies go out in completion order.
/// Requests reach this class only after <see cref="NbdRequestValidator"/> accepted them; nothing is
/// checked again here. A device failure is answered with the mapped error value (and, with structured
/// replies, a message) and logged once.
/// </summary>
/// <remarks>
/// Each request is one pooled state machine that returns its reply. A device that completes at once
/// (a thin volume does: its data path is pread/pwrite) leaves the reply with the reader, who writes it
/// without a thread hand-off. A request that goes asynchronous gets a second pooled state machine that
/// queues its reply when it ends; those are awaited, in the order they started, by
/// <see cref="ObserveAsync"/>, so their state machines return to the pool and none is left running
/// unobserved when the session ends. The observer runs inline (synchronous continuations): on the
/// reader, when it hands over a request, only as far as that request's pending await, and then on the
/// thread that completes what it waits for, so observing costs no thread-pool hand-off per request.
/// </remarks>
internal sealed class NbdCommandExecutor
{
    private readonly IBlockDevice _device;
    private readonly NbdTransmissionPolicy _policy;
    private readonly NbdReplyChannel _replies;
    private readonly ILogger _logger;
    private readonly string _connection;
    private readonly CancellationToken _aborting;
    private readonly Channel<ValueTask> _running = Channel.CreateUnbounded<ValueTask>(
        new UnboundedChannelOptions { SingleReader = true, SingleWriter = true, AllowSynchronousContinuations = true });
    private readonly Task _observer;

    public NbdCommandExecutor(
        IBlockDevice device, NbdTransmissionPolicy policy, NbdReplyChannel replies, ILogger logger, string connection, CancellationToken aborting)
    {
        _device = device;
        _policy = policy;
        _replies = replies;
        _logger = logger;
        _connection = connection;
        _aborting = aborting;
        _observer = ObserveAsync();
    }

    /// <summary>Bytes a request holds while in flight: its WRITE payload or its READ reply.</summary>
    public static long BufferedBytes(in NbdRequest request) =>
        request.Type is NbdWire.CmdRead or NbdWire.CmdWrite ? request.Length : 0;

    /// <summary>
    /// Starts a request admitted to the in-flight budget; returns once it waits on the device. The
    /// request owns <paramref name="payload"/> (a pooled WRITE payload) from here on. Reader only.
    /// </summary>
    public void Start(NbdRequest request, byte[]? payload)
    {
        var running = ExecuteAsync(request, payload);
        if (running.IsCompleted)
        {
            _replies.WriteFromReader(running.GetAwaiter().GetResult());
            return;
        }

        _running.Writer.TryWrite(ReplyWhenDoneAsync(running));
    }

    /// <summary>Completes once every request started has queued its reply; call after the last <see cref="Start"/>.</summary>
    public Task CompleteAsync()
    {
        _running.Writer.TryComplete();
        return _observer;
    }

    /// <summary>Queues the answer to a request that never reached the device; it holds a place in the budget but no bytes.</summary>
    public void Refuse(ulong handle, uint error, string message) =>
        _replies.WriteFromReader(ErrorReply(handle, error, message, 0));

    private async Task ObserveAsync()
    {
        while (await _running.Reader.WaitToReadAsync())
        {
            while (_running.Reader.TryRead(out var running))
            {
                await running;
            }
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReplyWhenDoneAsync(ValueTask<NbdPendingReply> running) => _replies.Enqueue(await running);

    /// <summary>One request from the device call to its reply, as a single state machine. Never throws.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<NbdPendingReply> ExecuteAsync(NbdRequest request, byte[]? payload)
    {
        var admitted = BufferedBytes(request);
        var handle = request.Handle;
        var offset = (long)request.Offset;
        // Up to 4 GiB - 1: TRIM, WRITE_ZEROES and CACHE lengths do not fit an int. READ and WRITE
        // lengths were checked against the payload limit (32 MiB) before they got here.
        long length = request.Length;
        byte[]? buffer = null;
        try
        {
            switch (request.Type)
            {
                case NbdWire.CmdRead when length > 0:
                    buffer = ArrayPool<byte>.Shared.Rent((int)length);
                    await _device.ReadAsync(offset, buffer.AsMemory(0, (int)length), _aborting);
                    var data = buffer;
                    buffer = null;
                    return new NbdPendingReply(
                        _policy.StructuredReplies ? NbdReplyKind.OffsetData : NbdReplyKind.SimpleRead,
                        handle, NbdWire.Success, request.Offset, data, (int)length, null, admitted);
                case NbdWire.CmdRead:
                    return new NbdPendingReply(
                        _policy.StructuredReplies ? NbdReplyKind.None : NbdReplyKind.Simple, handle, NbdWire.Success, 0, null, 0, null, admitted);
                case NbdWire.CmdWrite when length > 0:
                    await _device.WriteAsync(offset, payload.AsMemory(0, (int)length), FuaOf(request), _aborting);
                    break;
                case NbdWire.CmdFlush:
                    await _device.FlushAsync(_aborting);
                    break;
                case NbdWire.CmdTrim when length > 0:
                    await _device.TrimAsync(offset, length, FuaOf(request), _aborting);
                    break;
                case NbdWire.CmdWriteZeroes when length > 0:
                    await _device.WriteZeroesAsync(offset, length, ZeroFlagsOf(request), _aborting);
                    break;
                case NbdWire.CmdCache when length > 0:
                    await _device.CacheAsync(offset, length, _aborting);
                    break;
                case NbdWire.CmdBlockStatus:
                    return await BlockStatusAsync(request, admitted);
            }

            return new NbdPendingReply(NbdReplyKind.Simple, handle, NbdWire.Success, 0, null, 0, null, admitted);
        }
        catch (Exception exception)
        {
            return Failure(request, exception, admitted);
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }

            if (payload is not null)
            {
                ArrayPool<byte>.Shared.Return(payload);
            }
        }
    }

    /// <summary>One NBD_REPLY_TYPE_BLOCK_STATUS chunk for base:allocation, the only context offered.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<NbdPendingReply> BlockStatusAsync(NbdRequest request, long admitted)
    {
        var extents = await _device.GetAllocationAsync((long)request.Offset, request.Length, _aborting);
        var payload = ArrayPool<byte>.Shared.Rent(NbdReplyFormat.MaxBlockStatusPayloadLength(extents.Count));
        var length = NbdReplyFormat.WriteBlockStatusPayload(
            payload, NbdWire.BaseAllocationContextId, extents, request.Length, request.HasFlag(NbdWire.CmdFlagReqOne), _policy.Alignment);
        if (length < 0)
        {
            ArrayPool<byte>.Shared.Return(payload);
            throw new BlockDeviceException(StorageError.Io, "the device described no allocation for the range");
        }

        return new NbdPendingReply(NbdReplyKind.BlockStatus, request.Handle, NbdWire.Success, 0, payload, length, null, admitted);
    }

    private NbdPendingReply Failure(in NbdRequest request, Exception exception, long admitted)
    {
        uint error;
        string message;
        var command = NbdErrors.CommandName(request.Type);
        switch (exception)
        {
            case BlockDeviceException deviceError:
                error = NbdErrors.FromStorageError(deviceError.Error, request.Type);
                message = deviceError.Message;
                NbdLog.DeviceFailed(_logger, _connection, command, NbdErrors.ErrorName(error), message, request.Handle, request.Offset, request.Length);
                break;
            case OperationCanceledException when _aborting.IsCancellationRequested:
                error = NbdWire.EShutdown;
                message = "the server is shutting down";
                NbdLog.DeviceFailed(_logger, _connection, command, NbdErrors.ErrorName(error), message, request.Handle, request.Offset, request.Length);
                break;
            default:
                error = NbdWire.EIo;
                message = "internal server error";
                NbdLog.DeviceBug(_logger, _connection, command, request.Handle, request.Offset, request.Length, exception);
                break;
        }

        return ErrorReply(request.Handle, error, message, admitted);
    }

    /// <summary>An error chunk with structured replies (the spec prefers them for errors, and READ needs one); a simple reply otherwise.</summary>
    private NbdPendingReply ErrorReply(ulong handle, uint error, string message, long admitted) => _policy.StructuredReplies
        ? new NbdPendingReply(NbdReplyKind.ErrorChunk, handle, error, 0, null, 0, message, admitted)
        : new NbdPendingReply(NbdReplyKind.Simple, handle, error, 0, null, 0, null, admitted);

    private static IoFlags FuaOf(in NbdRequest request) =>
        request.HasFlag(NbdWire.CmdFlagFua) ? IoFlags.Fua : IoFlags.None;

    private static IoFlags ZeroFlagsOf(in NbdRequest request) =>
        FuaOf(request) | (request.HasFlag(NbdWire.CmdFlagNoHole) ? IoFlags.NoHole : IoFlags.None);
}

using System.Buffers;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Replicator.Core.Devices;

namespace Replicator.Protocol.Nbd;

/// <summary>
/// Runs validated requests against the device, each on its own, and sends each one's reply when its
/// device call ends, so replies go out in completion order. Requests reach this class only after
/// <see cref="NbdRequestValidator"/> accepted them; nothing is checked again here. A device failure is
/// answered with the mapped error value (and, with structured replies, a message) and logged once.
/// </summary>
internal sealed class NbdCommandExecutor
{
    private readonly IBlockDevice _device;
    private readonly NbdTransmissionPolicy _policy;
    private readonly NbdReplyChannel _replies;
    private readonly NbdInFlightLimiter _limiter;
    private readonly Action _drained;
    private readonly ILogger _logger;
    private readonly string _connection;
    private readonly CancellationToken _aborting;

    public NbdCommandExecutor(
        IBlockDevice device, NbdTransmissionPolicy policy, NbdReplyChannel replies, NbdInFlightLimiter limiter,
        Action drained, ILogger logger, string connection, CancellationToken aborting)
    {
        _device = device;
        _policy = policy;
        _replies = replies;
        _limiter = limiter;
        _drained = drained;
        _logger = logger;
        _connection = connection;
        _aborting = aborting;
    }

    /// <summary>Bytes a request holds while in flight: its WRITE payload or its READ reply.</summary>
    public static long BufferedBytes(in NbdRequest request) =>
        request.Type is NbdWire.CmdRead or NbdWire.CmdWrite ? request.Length : 0;

    /// <summary>
    /// Starts a request admitted by the limiter; returns once it waits on the device. The request returns
    /// <paramref name="payload"/> to the pool and releases its admission when its reply is written.
    /// </summary>
    public void Start(NbdRequest request, byte[]? payload) => _ = ExecuteAsync(request, payload);

    /// <summary>Answers a request that never reached the device.</summary>
    public ValueTask SendErrorAsync(ulong handle, uint error, string message) =>
        _policy.StructuredReplies ? _replies.SendErrorChunkAsync(handle, error, message) : _replies.SendSimpleAsync(handle, error);

    private async Task ExecuteAsync(NbdRequest request, byte[]? payload)
    {
        try
        {
            await RunAsync(request, payload);
        }
        catch (Exception exception)
        {
            await FailAsync(request, exception);
        }
        finally
        {
            if (payload is not null)
            {
                ArrayPool<byte>.Shared.Return(payload);
            }

            if (_limiter.Release(BufferedBytes(request)))
            {
                _drained();
            }
        }
    }

    private ValueTask RunAsync(NbdRequest request, byte[]? payload)
    {
        var offset = (long)request.Offset;
        return request.Type switch
        {
            NbdWire.CmdRead => ReadAsync(request),
            NbdWire.CmdWrite => WriteAsync(request, payload!),
            NbdWire.CmdFlush => ThenReplyAsync(request, _device.FlushAsync(_aborting)),
            NbdWire.CmdTrim => request.Length == 0
                ? _replies.SendSimpleAsync(request.Handle, NbdWire.Success)
                : ThenReplyAsync(request, _device.TrimAsync(offset, request.Length, FuaOf(request), _aborting)),
            NbdWire.CmdWriteZeroes => request.Length == 0
                ? _replies.SendSimpleAsync(request.Handle, NbdWire.Success)
                : ThenReplyAsync(request, _device.WriteZeroesAsync(offset, request.Length, ZeroFlagsOf(request), _aborting)),
            NbdWire.CmdCache => request.Length == 0
                ? _replies.SendSimpleAsync(request.Handle, NbdWire.Success)
                : ThenReplyAsync(request, _device.CacheAsync(offset, request.Length, _aborting)),
            _ => BlockStatusAsync(request),
        };
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ThenReplyAsync(NbdRequest request, ValueTask operation)
    {
        await operation;
        await _replies.SendSimpleAsync(request.Handle, NbdWire.Success);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReadAsync(NbdRequest request)
    {
        var length = (int)request.Length;
        if (length == 0)
        {
            await (_policy.StructuredReplies
                ? _replies.SendNoneAsync(request.Handle)
                : _replies.SendSimpleReadAsync(request.Handle, ReadOnlyMemory<byte>.Empty));
            return;
        }

        var buffer = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            var data = buffer.AsMemory(0, length);
            await _device.ReadAsync((long)request.Offset, data, _aborting);
            await (_policy.StructuredReplies
                ? _replies.SendOffsetDataAsync(request.Handle, request.Offset, data)
                : _replies.SendSimpleReadAsync(request.Handle, data));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WriteAsync(NbdRequest request, byte[] payload)
    {
        if (request.Length > 0)
        {
            await _device.WriteAsync((long)request.Offset, payload.AsMemory(0, (int)request.Length), FuaOf(request), _aborting);
        }

        await _replies.SendSimpleAsync(request.Handle, NbdWire.Success);
    }

    /// <summary>One NBD_REPLY_TYPE_BLOCK_STATUS chunk for base:allocation, the only context offered.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask BlockStatusAsync(NbdRequest request)
    {
        var extents = await _device.GetAllocationAsync((long)request.Offset, request.Length, _aborting);
        var reqOne = request.HasFlag(NbdWire.CmdFlagReqOne);
        if (!await _replies.SendBlockStatusAsync(request.Handle, extents, request.Length, reqOne, _policy.Alignment))
        {
            throw new BlockDeviceException(StorageError.Io, "the device described no allocation for the range");
        }
    }

    private async Task FailAsync(NbdRequest request, Exception exception)
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

        await SendErrorAsync(request.Handle, error, message);
    }

    private static IoFlags FuaOf(in NbdRequest request) =>
        request.HasFlag(NbdWire.CmdFlagFua) ? IoFlags.Fua : IoFlags.None;

    private static IoFlags ZeroFlagsOf(in NbdRequest request) =>
        FuaOf(request) | (request.HasFlag(NbdWire.CmdFlagNoHole) ? IoFlags.NoHole : IoFlags.None);
}

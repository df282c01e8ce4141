using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Replicator.Core.Devices;

namespace Replicator.Protocol.Nbd;

/// <summary>
/// The one way out of a connection during transmission. Requests finish in any order and each writes its
/// whole reply (header and payload) under one gate, so replies never interleave on the wire. Once the
/// transport fails or the session closes the channel, replies are dropped: a device call that finishes
/// after its client vanished never writes to a completed pipe.
/// </summary>
/// <remarks>
/// A gate rather than a single writer loop: the uncontended <see cref="SemaphoreSlim.WaitAsync()"/> completes
/// synchronously without allocating, a reply is formatted straight into the pipe with no queued object per
/// request, and the pipe itself batches what several completions write before one flush reaches the socket.
/// </remarks>
internal sealed class NbdReplyChannel
{
    private readonly PipeWriter _writer;
    private readonly ILogger _logger;
    private readonly string _connection;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private volatile bool _closed;

    public NbdReplyChannel(PipeWriter writer, ILogger logger, string connection)
    {
        _writer = writer;
        _logger = logger;
        _connection = connection;
    }

    /// <summary>The transport failed or the channel was closed; nothing more will be sent.</summary>
    public bool IsClosed => _closed;

    /// <summary>A simple reply without payload: success or an error for any request.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SendSimpleAsync(ulong handle, uint error)
    {
        await _gate.WaitAsync();
        try
        {
            if (_closed)
            {
                return;
            }

            NbdReplyFormat.WriteSimpleReply(_writer.GetSpan(NbdWire.SimpleReplyLength), error, handle);
            _writer.Advance(NbdWire.SimpleReplyLength);
            await FlushAsync();
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>A successful simple reply to READ, followed by the data.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SendSimpleReadAsync(ulong handle, ReadOnlyMemory<byte> data)
    {
        await _gate.WaitAsync();
        try
        {
            if (_closed)
            {
                return;
            }

            NbdReplyFormat.WriteSimpleReply(_writer.GetSpan(NbdWire.SimpleReplyLength), NbdWire.Success, handle);
            _writer.Advance(NbdWire.SimpleReplyLength);
            _writer.Write(data.Span);
            await FlushAsync();
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>The final NBD_REPLY_TYPE_OFFSET_DATA chunk of a READ: offset, then the data.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SendOffsetDataAsync(ulong handle, ulong offset, ReadOnlyMemory<byte> data)
    {
        await _gate.WaitAsync();
        try
        {
            if (_closed)
            {
                return;
            }

            const int prefix = NbdWire.StructuredReplyHeaderLength + NbdWire.OffsetDataPrefixLength;
            var span = _writer.GetSpan(prefix);
            NbdReplyFormat.WriteChunkHeader(
                span, NbdWire.ReplyFlagDone, NbdWire.ReplyTypeOffsetData, handle, (uint)(NbdWire.OffsetDataPrefixLength + data.Length));
            BinaryPrimitives.WriteUInt64BigEndian(span[NbdWire.StructuredReplyHeaderLength..], offset);
            _writer.Advance(prefix);
            _writer.Write(data.Span);
            await FlushAsync();
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>A lone NBD_REPLY_TYPE_NONE chunk: success without content (a READ of zero bytes).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SendNoneAsync(ulong handle)
    {
        await _gate.WaitAsync();
        try
        {
            if (_closed)
            {
                return;
            }

            NbdReplyFormat.WriteChunkHeader(
                _writer.GetSpan(NbdWire.StructuredReplyHeaderLength), NbdWire.ReplyFlagDone, NbdWire.ReplyTypeNone, handle, 0);
            _writer.Advance(NbdWire.StructuredReplyHeaderLength);
            await FlushAsync();
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>The final NBD_REPLY_TYPE_ERROR chunk, carrying a message for the user.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SendErrorChunkAsync(ulong handle, uint error, string message)
    {
        await _gate.WaitAsync();
        try
        {
            if (_closed)
            {
                return;
            }

            var span = _writer.GetSpan(NbdWire.StructuredReplyHeaderLength + NbdReplyFormat.MaxErrorPayloadLength(message));
            var length = NbdReplyFormat.WriteErrorPayload(span[NbdWire.StructuredReplyHeaderLength..], error, message);
            NbdReplyFormat.WriteChunkHeader(span, NbdWire.ReplyFlagDone, NbdWire.ReplyTypeError, handle, (uint)length);
            _writer.Advance(NbdWire.StructuredReplyHeaderLength + length);
            await FlushAsync();
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// The final NBD_REPLY_TYPE_BLOCK_STATUS chunk for base:allocation. Returns false, sending nothing,
    /// when the device described no bytes (the caller answers with an error instead).
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<bool> SendBlockStatusAsync(
        ulong handle, IReadOnlyList<AllocationExtent> extents, uint length, bool reqOne, uint alignment)
    {
        await _gate.WaitAsync();
        try
        {
            if (_closed)
            {
                return true;
            }

            var span = _writer.GetSpan(NbdWire.StructuredReplyHeaderLength + NbdReplyFormat.MaxBlockStatusPayloadLength(extents.Count));
            var payload = NbdReplyFormat.WriteBlockStatusPayload(
                span[NbdWire.StructuredReplyHeaderLength..], NbdWire.BaseAllocationContextId, extents, length, reqOne, alignment);
            if (payload < 0)
            {
                return false;
            }

            NbdReplyFormat.WriteChunkHeader(span, NbdWire.ReplyFlagDone, NbdWire.ReplyTypeBlockStatus, handle, (uint)payload);
            _writer.Advance(NbdWire.StructuredReplyHeaderLength + payload);
            await FlushAsync();
            return true;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Unblocks a reply stuck behind a client that stopped reading; the channel closes.</summary>
    public void CancelPendingFlush() => _writer.CancelPendingFlush();

    /// <summary>
    /// Waits for the reply being written, then completes the pipe (sending what it still buffers, if the
    /// transport allows); later replies are dropped.
    /// </summary>
    public async Task CloseAsync()
    {
        await _gate.WaitAsync();
        try
        {
            _closed = true;
            await _writer.CompleteAsync();
        }
        catch (Exception exception) when (IsTransportFailure(exception))
        {
            NbdLog.ReplyFailed(_logger, _connection, exception);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>How a transport reports that the other end is gone or the pipe already completed.</summary>
    public static bool IsTransportFailure(Exception exception) =>
        exception is IOException or SocketException or ObjectDisposedException;

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask FlushAsync()
    {
        try
        {
            var result = await _writer.FlushAsync();
            if (result.IsCompleted || result.IsCanceled)
            {
                _closed = true;
            }
        }
        catch (Exception exception) when (IsTransportFailure(exception))
        {
            _closed = true;
            NbdLog.ReplyFailed(_logger, _connection, exception);
        }
    }
}

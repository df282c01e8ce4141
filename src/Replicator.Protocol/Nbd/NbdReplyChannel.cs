using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace Replicator.Protocol.Nbd;

/// <summary>
/// The one way out of a connection during transmission. Requests finish in any order and queue their
/// reply here; one loop writes each whole reply (header and payload) into the pipe, so replies never
/// interleave on the wire, and flushes once whenever the queue runs empty, so replies that finish
/// together leave in one send. Each reply gives its buffer back to the pool and its share of the
/// in-flight budget back to the connection once it is in the pipe.
/// </summary>
/// <remarks>
/// A writer loop rather than a lock around the pipe: completions never wait for each other (a contended
/// async lock allocates a waiter per request), and the flush count falls as load rises. When the transport
/// fails or the channel is aborted, replies are dropped (their buffers and budget still released), so a
/// device call that finishes after its client vanished never writes to a completed pipe.
/// </remarks>
internal sealed class NbdReplyChannel
{
    private readonly PipeWriter _writer;
    private readonly Action<long> _written;
    private readonly ILogger _logger;
    private readonly string _connection;
    private readonly Channel<NbdPendingReply> _queue = Channel.CreateUnbounded<NbdPendingReply>(
        new UnboundedChannelOptions { SingleReader = true, AllowSynchronousContinuations = false });
    private readonly Task _loop;
    private bool _closed;

    /// <param name="writer">The transport's output; the channel completes it when it is done.</param>
    /// <param name="written">Called with <see cref="NbdPendingReply.AdmittedBytes"/> of each reply once it is out (or dropped).</param>
    public NbdReplyChannel(PipeWriter writer, Action<long> written, ILogger logger, string connection)
    {
        _writer = writer;
        _written = written;
        _logger = logger;
        _connection = connection;
        _loop = WriteLoopAsync();
    }

    /// <summary>Queues a reply. Never waits: the in-flight budget bounds what can be queued.</summary>
    public void Enqueue(in NbdPendingReply reply)
    {
        if (!_queue.Writer.TryWrite(reply))
        {
            Finish(reply);
        }
    }

    /// <summary>No more replies: writes what is queued (unless the transport is gone), then completes the pipe.</summary>
    public Task CompleteAsync()
    {
        _queue.Writer.TryComplete();
        return _loop;
    }

    private async Task WriteLoopAsync()
    {
        var replies = _queue.Reader;
        while (await replies.WaitToReadAsync())
        {
            while (replies.TryRead(out var reply))
            {
                if (!_closed)
                {
                    Write(reply);
                }

                Finish(reply);
            }

            if (!_closed)
            {
                await FlushAsync();
            }
        }

        await CompleteWriterAsync();
    }

    private void Write(in NbdPendingReply reply)
    {
        const int header = NbdWire.StructuredReplyHeaderLength;
        Span<byte> span;
        switch (reply.Kind)
        {
            case NbdReplyKind.Simple:
            case NbdReplyKind.SimpleRead:
                NbdReplyFormat.WriteSimpleReply(_writer.GetSpan(NbdWire.SimpleReplyLength), reply.Error, reply.Handle);
                _writer.Advance(NbdWire.SimpleReplyLength);
                break;
            case NbdReplyKind.OffsetData:
                span = _writer.GetSpan(header + NbdWire.OffsetDataPrefixLength);
                NbdReplyFormat.WriteChunkHeader(
                    span, NbdWire.ReplyFlagDone, NbdWire.ReplyTypeOffsetData, reply.Handle, (uint)(NbdWire.OffsetDataPrefixLength + reply.Length));
                BinaryPrimitives.WriteUInt64BigEndian(span[header..], reply.Offset);
                _writer.Advance(header + NbdWire.OffsetDataPrefixLength);
                break;
            case NbdReplyKind.None:
                NbdReplyFormat.WriteChunkHeader(_writer.GetSpan(header), NbdWire.ReplyFlagDone, NbdWire.ReplyTypeNone, reply.Handle, 0);
                _writer.Advance(header);
                break;
            case NbdReplyKind.ErrorChunk:
                var message = reply.Message ?? "";
                span = _writer.GetSpan(header + NbdReplyFormat.MaxErrorPayloadLength(message));
                var length = NbdReplyFormat.WriteErrorPayload(span[header..], reply.Error, message);
                NbdReplyFormat.WriteChunkHeader(span, NbdWire.ReplyFlagDone, NbdWire.ReplyTypeError, reply.Handle, (uint)length);
                _writer.Advance(header + length);
                break;
            case NbdReplyKind.BlockStatus:
                NbdReplyFormat.WriteChunkHeader(
                    _writer.GetSpan(header), NbdWire.ReplyFlagDone, NbdWire.ReplyTypeBlockStatus, reply.Handle, (uint)reply.Length);
                _writer.Advance(header);
                break;
        }

        if (reply.Buffer is not null)
        {
            _writer.Write(reply.Buffer.AsSpan(0, reply.Length));
        }
    }

    private void Finish(in NbdPendingReply reply)
    {
        if (reply.Buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(reply.Buffer);
        }

        _written(reply.AdmittedBytes);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask FlushAsync()
    {
        try
        {
            var result = await _writer.FlushAsync();
            _closed = result.IsCompleted || result.IsCanceled;
        }
        catch (Exception exception) when (IsTransportFailure(exception))
        {
            _closed = true;
            NbdLog.ReplyFailed(_logger, _connection, exception);
        }
    }

    /// <summary>
    /// Completes the pipe. Once the transport failed or was cancelled, with an error, so a stream-backed
    /// pipe does not try to send what it still holds to a client that is not reading.
    /// </summary>
    private async Task CompleteWriterAsync()
    {
        try
        {
            await _writer.CompleteAsync(_closed ? new IOException("the NBD connection was closed") : null);
        }
        catch (Exception exception) when (IsTransportFailure(exception))
        {
            NbdLog.ReplyFailed(_logger, _connection, exception);
        }
    }

    /// <summary>How a transport reports that the other end is gone.</summary>
    public static bool IsTransportFailure(Exception exception) =>
        exception is IOException or SocketException or ObjectDisposedException;
}

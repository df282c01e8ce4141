using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Replicator.Protocol.Nbd;

/// <summary>
/// The one way out of a connection during transmission. Requests finish in any order and hand their
/// reply here; whoever holds the writer writes each whole reply (header and payload) into the pipe, so
/// replies never interleave on the wire, and flushes once it has nothing more to write, so replies that
/// finish together leave in one send. Each reply gives its buffer back to the pool and its share of the
/// in-flight budget back to the connection once it is in the pipe.
/// </summary>
/// <remarks>
/// <para>
/// The writer is held by one party at a time, and nobody waits for it. A request that completes on the
/// connection's reader (a device that answers at once, such as a thin volume) is written by the reader
/// itself (<see cref="WriteFromReader"/>), which keeps the writer for the rest of what it has read and
/// sends everything with one flush (<see cref="FlushFromReader"/>) before it waits for more input, or
/// once it holds <see cref="ReaderFlushThreshold"/> bytes: no thread hand-off per request. A request that completes elsewhere (<see cref="Enqueue"/>) writes and
/// flushes on its own thread when the writer is free, or leaves its reply queued for the holder, who
/// writes the queue before letting go. A flush that must wait for the transport (a client that does not
/// read) is finished by its continuation, which then writes what was queued meanwhile; the party that
/// started it returns at once, so the reader never waits for the transport and queued replies keep their
/// share of the budget until they are written, which stops the reader.
/// </para>
/// <para>
/// When the transport fails or is cancelled, replies are dropped (their buffers and budget still
/// released), so a device call that finishes after its client vanished never writes to a completed pipe.
/// </para>
/// </remarks>
internal sealed class NbdReplyChannel : IDeferredFlush
{
    /// <summary>
    /// What the reader may write before it sends, even with more input at hand: its replies give their
    /// budget back when written, so this, not the in-flight limit, bounds what it holds unsent.
    /// </summary>
    private const int ReaderFlushThreshold = 256 * 1024;

    private readonly PipeWriter _writer;
    private readonly Action<long> _written;
    private readonly ILogger _logger;
    private readonly string _connection;
    private readonly Lock _lock = new();
    private readonly Queue<NbdPendingReply> _queue = new();
    private bool _held;
    private bool _readerHolds;
    private bool _completed;
    private bool _closed;
    private TaskCompletionSource? _released;

    /// <summary>The <see cref="SendBatch"/> holding the writer with its flush put off; set and cleared by the holder only.</summary>
    private SendBatch? _batchHolds;

    /// <param name="writer">The transport's output; the channel completes it when it is done.</param>
    /// <param name="written">Called with <see cref="NbdPendingReply.AdmittedBytes"/> of each reply once it is out (or dropped).</param>
    public NbdReplyChannel(PipeWriter writer, Action<long> written, ILogger logger, string connection)
    {
        _writer = writer;
        _written = written;
        _logger = logger;
        _connection = connection;
    }

    /// <summary>
    /// Reader only: writes the reply of a request that completed on the reader, taking the writer if it is
    /// free and keeping it until <see cref="FlushFromReader"/>; queues the reply for the holder otherwise.
    /// </summary>
    public void WriteFromReader(in NbdPendingReply reply)
    {
        if (!_readerHolds)
        {
            lock (_lock)
            {
                if (_held)
                {
                    _queue.Enqueue(reply);
                    return;
                }

                _held = true;
            }

            _readerHolds = true;
        }

        WriteOne(reply);
        if (_writer.CanGetUnflushedBytes && _writer.UnflushedBytes >= ReaderFlushThreshold)
        {
            FlushFromReader();
        }
    }

    /// <summary>
    /// Reader only, before it waits for anything: sends what it wrote and what was queued meanwhile, and
    /// lets go of the writer. Never waits; a flush the transport holds up is finished in the background.
    /// </summary>
    public void FlushFromReader()
    {
        if (_readerHolds)
        {
            _readerHolds = false;
            SendAndRelease();
        }
    }

    /// <summary>
    /// Hands over the reply of a request that completed off the reader. Never waits: the in-flight budget bounds what
    /// can be queued. Inside a <see cref="SendBatch"/> (a gateway's receive loop completing the requests that one read
    /// of a node's replies answered) the reply is written and its flush put off to the batch's end, with the others.
    /// </summary>
    public void Enqueue(in NbdPendingReply reply)
    {
        var batch = SendBatch.Current;
        if (batch is not null && ReferenceEquals(_batchHolds, batch))
        {
            WriteOne(reply);
            return;
        }

        bool drop;
        lock (_lock)
        {
            drop = _completed;
            if (!drop)
            {
                if (_held)
                {
                    _queue.Enqueue(reply);
                    return;
                }

                _held = true;
            }
        }

        if (drop)
        {
            Finish(reply);
            return;
        }

        WriteOne(reply);
        if (batch is not null)
        {
            _batchHolds = batch;
            batch.Defer(this);
            return;
        }

        SendAndRelease();
    }

    /// <summary>The batch that wrote replies ended: send them and what was queued meanwhile, and let go of the writer.</summary>
    void IDeferredFlush.FlushDeferred()
    {
        _batchHolds = null;
        SendAndRelease();
    }

    /// <summary>
    /// No more replies: sends what the reader holds, waits until what is queued is written (unless the
    /// transport is gone), then completes the pipe. Call from the reader's side once reading has ended.
    /// </summary>
    public async Task CompleteAsync()
    {
        FlushFromReader();
        Task? writing;
        lock (_lock)
        {
            _completed = true;
            writing = _held ? (_released ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task : null;
        }

        if (writing is not null)
        {
            await writing;
        }

        await CompleteWriterAsync();
    }

    /// <summary>How a transport reports that the other end is gone.</summary>
    public static bool IsTransportFailure(Exception exception) =>
        exception is IOException or SocketException or ObjectDisposedException;

    /// <summary>
    /// The holder's loop: flush, write what was queued meanwhile, repeat; let go once the queue is empty.
    /// A flush that does not complete at once is finished by <see cref="ResumeAfterFlushAsync"/>.
    /// </summary>
    private void SendAndRelease()
    {
        while (true)
        {
            if (!_closed)
            {
                ValueTask<FlushResult> flush;
                try
                {
                    flush = _writer.FlushAsync();
                }
                catch (Exception exception)
                {
                    Failed(exception);
                    continue;
                }

                if (!flush.IsCompleted)
                {
                    _ = ResumeAfterFlushAsync(flush);
                    return;
                }

                EndFlush(flush);
            }

            if (!WriteQueued())
            {
                return;
            }
        }
    }

    private async Task ResumeAfterFlushAsync(ValueTask<FlushResult> flush)
    {
        try
        {
            var result = await flush;
            _closed = result.IsCompleted || result.IsCanceled;
        }
        catch (Exception exception)
        {
            Failed(exception);
        }

        if (WriteQueued())
        {
            SendAndRelease();
        }
    }

    private void EndFlush(ValueTask<FlushResult> flush)
    {
        try
        {
            var result = flush.GetAwaiter().GetResult();
            _closed = result.IsCompleted || result.IsCanceled;
        }
        catch (Exception exception)
        {
            Failed(exception);
        }
    }

    /// <summary>Writes every queued reply; returns false, having let go of the writer, when there was none.</summary>
    private bool WriteQueued()
    {
        var wrote = false;
        while (TryDequeueOrRelease(keep: wrote, out var reply))
        {
            WriteOne(reply);
            wrote = true;
        }

        return wrote;
    }

    /// <summary>
    /// Takes the next queued reply. When there is none, lets go of the writer, unless <paramref name="keep"/>
    /// says replies were just written and still have to be flushed.
    /// </summary>
    private bool TryDequeueOrRelease(bool keep, out NbdPendingReply reply)
    {
        TaskCompletionSource? released;
        lock (_lock)
        {
            if (_queue.TryDequeue(out reply))
            {
                return true;
            }

            if (keep)
            {
                return false;
            }

            _held = false;
            released = _released;
        }

        released?.TrySetResult();
        return false;
    }

    private void WriteOne(in NbdPendingReply reply)
    {
        if (!_closed)
        {
            Write(reply);
        }

        Finish(reply);
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

    /// <summary>The transport failed under a flush: nothing more is sent, and queued replies are dropped.</summary>
    private void Failed(Exception exception)
    {
        _closed = true;
        NbdLog.ReplyFailed(_logger, _connection, exception);
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
}

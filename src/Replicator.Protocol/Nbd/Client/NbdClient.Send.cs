using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.IO.Pipelines;

namespace Replicator.Protocol.Nbd.Client;

/// <summary>
/// The sending side of a client connection. Whoever queues a request also writes it, unless another thread is
/// writing already, in which case that thread writes it too before it lets go: a lone request leaves on the
/// caller's thread without waking another, and requests arriving together leave in one flush. A flush that
/// cannot complete at once (the socket is full) is finished asynchronously by whoever started it, still holding
/// the write lock, and the caller returns. Inside a <see cref="SendBatch"/> (a gateway forwarding the requests one
/// read from its client brought) the writer keeps the lock and puts the flush off to the batch's end, so those
/// requests leave in one send.
/// </summary>
internal sealed partial class NbdClient : IDeferredFlush
{
    /// <summary>Bytes written without a flush after which the writer flushes even though more requests are queued.</summary>
    private const int FlushThreshold = 1024 * 1024;

    private readonly ConcurrentQueue<NbdClientRequest> _sendQueue = new();
    private readonly SemaphoreSlim _writeLock = new(1, 1);

    /// <summary>NBD_CMD_DISC is to follow the queued requests (set under the slot lock, with <see cref="_refusing"/>).</summary>
    private volatile bool _disconnectQueued;

    /// <summary>Nothing more may be written: DISC went out, or the connection ended. Only touched under the write lock.</summary>
    private bool _writerClosed;

    /// <summary>The <see cref="SendBatch"/> holding the write lock with its flush put off; set and cleared by the holder only.</summary>
    private SendBatch? _batchHolds;

    /// <summary>Queues <paramref name="request"/> (if any) and writes everything queued unless another thread is writing.</summary>
    private void Send(NbdClientRequest? request)
    {
        if (request is not null)
        {
            _sendQueue.Enqueue(request);
        }

        var batch = SendBatch.Current;
        if (batch is not null && ReferenceEquals(_batchHolds, batch))
        {
            WriteQueued();
            return;
        }

        while ((!_sendQueue.IsEmpty || _disconnectQueued) && _writeLock.Wait(0))
        {
            if (batch is not null)
            {
                if (WriteQueued())
                {
                    _batchHolds = batch;
                    batch.Defer(this);
                }
                else
                {
                    _writeLock.Release();
                }

                return;
            }

            if (!TryWriteQueued(out var flush))
            {
                _writeLock.Release();
                return;
            }

            if (!FinishFlush(flush))
            {
                return;
            }
        }
    }

    /// <summary>The batch that wrote requests ended: send them, let go of the write lock and write what was queued meanwhile.</summary>
    void IDeferredFlush.FlushDeferred()
    {
        _batchHolds = null;
        ValueTask<FlushResult> flush;
        try
        {
            flush = _transport.Output.FlushAsync();
        }
        catch (Exception exception) when (IsTransportFailure(exception))
        {
            OnFlushFailed(exception);
            _writeLock.Release();
            return;
        }

        if (FinishFlush(flush))
        {
            Send(null);
        }
    }

    /// <summary>
    /// Finishes a flush started holding the write lock: at once when it completed (then lets go of the lock and
    /// returns true), else in the background, which lets go of the lock when it is done.
    /// </summary>
    private bool FinishFlush(ValueTask<FlushResult> flush)
    {
        if (!flush.IsCompleted)
        {
            _ = FinishFlushAsync(flush);
            return false;
        }

        try
        {
            OnFlushed(flush.GetAwaiter().GetResult());
        }
        catch (Exception exception) when (IsTransportFailure(exception))
        {
            OnFlushFailed(exception);
        }

        _writeLock.Release();
        return true;
    }

    /// <summary>
    /// Writes what is queued (up to <see cref="FlushThreshold"/> bytes) and starts the flush; false when nothing may
    /// be written any more (what is queued then fails with the connection). Holding the write lock.
    /// </summary>
    private bool TryWriteQueued(out ValueTask<FlushResult> flush)
    {
        flush = default;
        if (!WriteQueued())
        {
            return false;
        }

        flush = _transport.Output.FlushAsync();
        return true;
    }

    /// <summary>
    /// Writes what is queued (up to <see cref="FlushThreshold"/> bytes unflushed) into the transport without flushing;
    /// false when nothing may be written any more. Holding the write lock.
    /// </summary>
    private bool WriteQueued()
    {
        var output = _transport.Output;
        if (_writerClosed || Volatile.Read(ref _ended) != 0)
        {
            _writerClosed = true;
            return false;
        }

        var unflushed = output.CanGetUnflushedBytes ? output.UnflushedBytes : 0L;
        while (unflushed < FlushThreshold && _sendQueue.TryDequeue(out var request))
        {
            WriteHeader(output, request.Type, request.Flags, request.Cookie, request.Offset, request.Length);
            unflushed += NbdWire.RequestHeaderLength;
            if (request.Type == NbdWire.CmdWrite)
            {
                output.Write(request.Payload.Span);
                unflushed += request.Length;
            }

            request.PartDone();
        }

        if (_disconnectQueued && _sendQueue.IsEmpty)
        {
            WriteHeader(output, NbdWire.CmdDisc, 0, 0, 0, 0);
            _disconnectQueued = false;
            _writerClosed = true;
        }

        return true;
    }

    private async Task FinishFlushAsync(ValueTask<FlushResult> flush)
    {
        try
        {
            OnFlushed(await flush);
        }
        catch (Exception exception) when (IsTransportFailure(exception))
        {
            OnFlushFailed(exception);
        }
        finally
        {
            _writeLock.Release();
        }

        Send(null);
    }

    /// <summary>A cancelled flush means the connection is ending; a completed writer means the server stopped reading.</summary>
    private void OnFlushed(FlushResult result)
    {
        if (result.IsCompleted)
        {
            _writerClosed = true;
            End(NbdClientEndReason.ServerClosed, "the server stopped reading requests");
        }
        else if (result.IsCanceled)
        {
            _writerClosed = true;
        }
    }

    private void OnFlushFailed(Exception exception)
    {
        _writerClosed = true;
        End(NbdClientEndReason.TransportError, exception.Message);
    }

    /// <summary>Takes the write lock for good, once the connection has ended, so the output can be completed.</summary>
    private async Task CloseWriterAsync()
    {
        await _writeLock.WaitAsync();
        _writerClosed = true;
    }

    /// <summary>
    /// <code>
    /// magic (32) | flags (16) | type (16) | cookie (64) | offset (64) | length (32)
    /// </code>
    /// </summary>
    private static void WriteHeader(PipeWriter output, ushort type, ushort flags, ulong cookie, ulong offset, uint length)
    {
        var span = output.GetSpan(NbdWire.RequestHeaderLength);
        BinaryPrimitives.WriteUInt32BigEndian(span, NbdWire.RequestMagic);
        BinaryPrimitives.WriteUInt16BigEndian(span[4..], flags);
        BinaryPrimitives.WriteUInt16BigEndian(span[6..], type);
        BinaryPrimitives.WriteUInt64BigEndian(span[8..], cookie);
        BinaryPrimitives.WriteUInt64BigEndian(span[16..], offset);
        BinaryPrimitives.WriteUInt32BigEndian(span[24..], length);
        output.Advance(NbdWire.RequestHeaderLength);
    }
}

using System.Collections.Concurrent;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Peer;

internal sealed partial class PeerConnection
{
    private static readonly TimeSpan StoppedAcceptingGrace = TimeSpan.FromMilliseconds(200);

    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly SemaphoreSlim _requestSlots;
    private readonly ByteWindow _sendWindow;
    private readonly ConcurrentDictionary<ulong, TaskCompletionSource<PeerReply>> _pending = new();
    private long _lastRequestId;

    /// <summary>
    /// Sends a request and waits for the peer's reply. Many may be in flight; replies come in
    /// any order. The connection sets <paramref name="request"/>'s request id and payload checksum.
    /// </summary>
    /// <remarks>
    /// When the peer reports that the payload arrived corrupted (or a reply's payload arrives
    /// corrupted here) the request is sent again, up to <see cref="PeerConnectionOptions.MaxChecksumRetries"/>
    /// times; after that the reply is returned with <see cref="ReplyStatus.ChecksumMismatch"/>.
    /// Cancelling stops the wait, not the request: a request already sent may still be applied.
    /// </remarks>
    /// <param name="request">A request body (write, trim, flush, ...), not a connection control message.</param>
    /// <param name="payload">Data that travels raw after the header (a write's blocks); it must stay unchanged until this completes.</param>
    /// <param name="cancellationToken">Stops waiting for a request slot, the send lock or the reply.</param>
    /// <returns>The reply, whatever its status; dispose it to release a data payload.</returns>
    /// <exception cref="PeerConnectionClosedException">The connection ended before the reply arrived.</exception>
    public Task<PeerReply> SendRequestAsync(Envelope request, ReadOnlyMemory<byte> payload = default, CancellationToken cancellationToken = default) =>
        SendRequestAsync(request, payload, ReadOnlyMemory<byte>.Empty, cancellationToken);

    /// <summary>
    /// Sends a request whose block data travels with its block checksums (8 bytes per 4 KiB block, computed where
    /// the data entered the pair): the peer checks the blocks against them instead of a payload checksum.
    /// </summary>
    public async Task<PeerReply> SendRequestAsync(Envelope request, ReadOnlyMemory<byte> payload, ReadOnlyMemory<byte> blockChecksums, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!PeerRequestValidator.IsRequest(request.BodyCase))
        {
            throw new ArgumentException($"{request.BodyCase} is not a request; the connection sends its own control messages.", nameof(request));
        }

        if ((long)payload.Length + blockChecksums.Length > _options.FrameLimits.MaxPayloadLength)
        {
            throw new ArgumentException($"The payload is {payload.Length + blockChecksums.Length} bytes, more than the {_options.FrameLimits.MaxPayloadLength} bytes a peer accepts in one frame.", nameof(payload));
        }

        PeerFrameWriter.SealPayload(request, payload.Span, blockChecksums.Span);
        await WaitAsync(_requestSlots, cancellationToken);
        var window = 0L;
        try
        {
            window = await TakeSendWindowAsync(payload.Length + blockChecksums.Length, cancellationToken);
            for (var attempt = 1; ; attempt++)
            {
                var reply = await SendOnceAsync(request, payload, blockChecksums, cancellationToken);
                if (reply.Status != ReplyStatus.ChecksumMismatch)
                {
                    return reply;
                }

                reply.Dispose();
                if (attempt > _options.MaxChecksumRetries)
                {
                    Log.ChecksumRetriesExhausted(_logger, PeerName, request.BodyCase, attempt);
                    return new PeerReply(
                        ReplyStatus.ChecksumMismatch,
                        $"a payload of the {request.BodyCase} request arrived corrupted at every one of {attempt} attempts; the link to peer {PeerName} damages data",
                        null);
                }

                Log.ChecksumMismatchResending(_logger, PeerName, request.BodyCase, request.RequestId, attempt, _options.MaxChecksumRetries);
            }
        }
        finally
        {
            _sendWindow.Release(window);
            _requestSlots.Release();
        }
    }

    /// <summary>Room in the peer's receive window for a payload of <paramref name="length"/> bytes (none is needed without one).</summary>
    private async ValueTask<long> TakeSendWindowAsync(int length, CancellationToken cancellationToken)
    {
        if (length == 0 || _sendWindow.TryTake(length))
        {
            return _sendWindow.Cost(length);
        }

        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _closing.Token);
        try
        {
            return await _sendWindow.TakeAsync(length, linked.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw ClosedException();
        }
    }

    private async Task<PeerReply> SendOnceAsync(Envelope request, ReadOnlyMemory<byte> payload, ReadOnlyMemory<byte> blockChecksums, CancellationToken cancellationToken)
    {
        var requestId = (ulong)Interlocked.Increment(ref _lastRequestId);
        request.RequestId = requestId;
        var pending = new TaskCompletionSource<PeerReply>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[requestId] = pending;
        try
        {
            // Published before this check: an ending connection either sees the entry and fails it, or ended before and is seen here.
            if (End is not null)
            {
                throw ClosedException();
            }

            await SendFrameAsync(request, payload, blockChecksums, cancellationToken);
            await using var registration = cancellationToken.Register(
                static (state, token) => ((TaskCompletionSource<PeerReply>)state!).TrySetCanceled(token),
                pending);
            return await pending.Task;
        }
        finally
        {
            _pending.TryRemove(requestId, out _);
        }
    }

    /// <summary>Sends the reply to an incoming request (<see cref="PeerIncomingRequest.ReplyAsync"/>).</summary>
    internal ValueTask SendReplyAsync(ulong requestId, ReplyStatus status, string? message, ReadOnlyMemory<byte> payload, ReadOnlyMemory<byte> blockChecksums = default) =>
        SendReplyAsync(requestId, new Reply { Status = status, Message = message ?? string.Empty }, payload, blockChecksums);

    internal async ValueTask SendReplyAsync(ulong requestId, Reply reply, ReadOnlyMemory<byte> payload, ReadOnlyMemory<byte> blockChecksums = default)
    {
        var header = new Envelope { RequestId = requestId, Reply = reply };
        PeerFrameWriter.SealPayload(header, payload.Span, blockChecksums.Span);
        await SendFrameAsync(header, payload, blockChecksums, CancellationToken.None);
    }

    /// <summary>Throws unless a reply payload of this size fits in a frame; checked before a request counts as replied.</summary>
    internal void ValidateReplyPayload(ReadOnlyMemory<byte> payload, ReadOnlyMemory<byte> blockChecksums = default)
    {
        if ((long)payload.Length + blockChecksums.Length > _options.FrameLimits.MaxPayloadLength)
        {
            throw new ArgumentException($"The reply payload is {payload.Length + blockChecksums.Length} bytes, more than the {_options.FrameLimits.MaxPayloadLength} bytes a peer accepts in one frame.", nameof(payload));
        }
    }

    /// <summary>
    /// Writes and flushes one frame under the send lock. The flush waits only for the connection
    /// to end, never for <paramref name="cancellationToken"/>: a frame once started goes out whole.
    /// </summary>
    private async ValueTask SendFrameAsync(Envelope header, ReadOnlyMemory<byte> payload, ReadOnlyMemory<byte> trailer, CancellationToken cancellationToken)
    {
        await WaitAsync(_sendLock, cancellationToken);
        try
        {
            PeerFrameWriter.WriteFrame(_transport.Output, header, payload.Span, trailer.Span, _options.FrameLimits);
            var result = await _transport.Output.FlushAsync(_closing.Token);
            if (result.IsCompleted)
            {
                // The peer has stopped reading, so its end of the connection is over. The Goodbye
                // saying why may be waiting in the input: the receive loop gets a moment to read it.
                try
                {
                    await Task.Delay(StoppedAcceptingGrace, _closing.Token);
                }
                catch (OperationCanceledException)
                {
                }

                TryEnd(new PeerConnectionEnd(PeerConnectionEndReason.RemoteClosed, "the transport stopped accepting data"));
                throw ClosedException();
            }
        }
        catch (OperationCanceledException) when (_closing.IsCancellationRequested)
        {
            throw ClosedException();
        }
        catch (Exception exception) when (exception is IOException and not PeerConnectionClosedException or ObjectDisposedException)
        {
            TryEnd(new PeerConnectionEnd(PeerConnectionEndReason.TransportError, $"sending to the peer failed: {exception.Message}", exception));
            throw ClosedException();
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>Sends a frame the receive loop or the keepalive timer must not wait for; a closed connection is not an error here.</summary>
    private async Task SendControlAsync(Envelope header)
    {
        try
        {
            await SendFrameAsync(header, ReadOnlyMemory<byte>.Empty, ReadOnlyMemory<byte>.Empty, CancellationToken.None);
        }
        catch (PeerConnectionClosedException)
        {
        }
    }

    private Task SendReplyInBackgroundAsync(ulong requestId, ReplyStatus status, string message)
        => SendControlAsync(new Envelope { RequestId = requestId, Reply = new Reply { Status = status, Message = message } });

    /// <summary>
    /// Says Goodbye, waiting at most the goodbye timeout; a send still stuck then is cancelled when
    /// the connection ends. The read lease closes first: a Goodbye tells the peer that this node
    /// serves no more paired reads, so it may write alone without waiting out its promise.
    /// </summary>
    private async Task SayGoodbyeAsync(string reason)
    {
        ReadLease.Close();
        var goodbye = SendControlAsync(new Envelope { Goodbye = new Goodbye { Reason = reason } });
        await Task.WhenAny(goodbye, Task.Delay(_options.GoodbyeTimeout));
    }

    /// <summary>Waits on a semaphore until it is free, <paramref name="cancellationToken"/> fires, or the connection ends.</summary>
    private async ValueTask WaitAsync(SemaphoreSlim semaphore, CancellationToken cancellationToken)
    {
        if (!semaphore.Wait(0))
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _closing.Token);
            try
            {
                await semaphore.WaitAsync(linked.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw ClosedException();
            }
        }

        if (End is not null)
        {
            semaphore.Release();
            throw ClosedException();
        }
    }

    private void FailPendingRequests(PeerConnectionEnd end)
    {
        foreach (var (requestId, pending) in _pending)
        {
            if (_pending.TryRemove(requestId, out _))
            {
                pending.TrySetException(new PeerConnectionClosedException(PeerName, end));
            }
        }
    }
}

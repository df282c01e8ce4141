using System.Diagnostics;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Security.Authentication;
using Microsoft.Extensions.Logging;
using Replicator.Core.Devices;

namespace Replicator.Protocol.Nbd.Client;

/// <summary>
/// One NBD client connection in the transmission phase, as an <see cref="IBlockDevice"/>: many requests in
/// flight, matched to their replies (simple or structured) by cookie.
/// </summary>
/// <remarks>
/// Concurrency: a caller takes one of <see cref="NbdClientOptions.MaxInFlightRequests"/> request slots (waiting
/// when none is free), fills it, queues it and writes the queue into the transport unless another thread is
/// writing it already (see <c>NbdClient.Send.cs</c>), so requests arriving together leave in one flush. The
/// receiver parses replies and streams READ data straight from the transport into the caller's buffer. A request
/// completes when it is both sent and answered; its continuation runs on the thread that completed it, and its
/// slot is free again once the caller has taken the result. When the connection ends for any reason (the server
/// closed it, a transport or protocol error, <see cref="Abort"/>) new requests are refused, the receiver stops and
/// the writer lets go, and only then is every request still in flight failed with <see cref="NbdConnectionLostException"/>, so no
/// caller's buffer is touched after its request has returned.
/// </remarks>
internal sealed partial class NbdClient : IBlockDevice, IAsyncDisposable
{
    private readonly IDuplexPipe _transport;
    private readonly Func<bool, ValueTask> _closeUnderTransport;
    private readonly NbdClientOptions _options;
    private readonly ILogger _logger;
    private readonly NbdClientRequest[] _slots;
    private readonly int[] _free;
    private readonly Lock _slotLock = new();
    private readonly SemaphoreSlim _admission;
    private readonly TaskCompletionSource<NbdConnectionLostException> _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task _receiver;
    private int _freeCount;
    private int _inFlight;
    private bool _refusing;
    private volatile bool _disconnecting;
    private int _ended;
    private NbdClientEndReason _endReason;
    private string _endDetail = "";

    /// <param name="transport">The pipe the messages travel on.</param>
    /// <param name="closeUnderTransport">
    /// Closes what lies under <paramref name="transport"/> once both its halves are completed (TLS, the socket); told
    /// whether the connection ended cleanly.
    /// </param>
    private NbdClient(
        IDuplexPipe transport, Func<bool, ValueTask> closeUnderTransport, NbdClientExport export, NbdClientOptions options, ILogger logger, string name)
    {
        _transport = transport;
        _closeUnderTransport = closeUnderTransport;
        _options = options;
        _logger = logger;
        Export = export;
        Name = name;
        var slots = options.MaxInFlightRequests;
        _slots = new NbdClientRequest[slots];
        _free = new int[slots];
        for (var i = 0; i < slots; i++)
        {
            _slots[i] = new NbdClientRequest(this, i);
            _free[i] = slots - 1 - i;
        }

        _freeCount = slots;
        _admission = new SemaphoreSlim(slots, slots);
        _receiver = Task.Run(ReceiveLoopAsync);
        _ = CloseWhenDoneAsync();
    }

    /// <summary>How this connection is named in logs and errors.</summary>
    public string Name { get; }

    /// <summary>What the handshake agreed on.</summary>
    public NbdClientExport Export { get; }

    public long Size => Export.Size;

    public DeviceFeatures Features => Export.Features;

    /// <summary>Completes once the connection has ended and every request in flight has failed; gives the reason.</summary>
    public Task<NbdConnectionLostException> Closed => _closed.Task;

    public bool IsOpen => Volatile.Read(ref _ended) == 0;

    public int InFlightCount => Volatile.Read(ref _inFlight);

    /// <summary>Connects over TCP or a Unix socket and runs the handshake, all within <see cref="NbdClientOptions.ConnectTimeout"/>.</summary>
    /// <exception cref="NbdHandshakeException">The server refused the export or broke the handshake.</exception>
    /// <exception cref="IOException">The server could not be reached in time.</exception>
    public static async Task<NbdClient> ConnectAsync(
        NbdUri uri, ILogger logger, NbdClientOptions? options = null, string? name = null, CancellationToken cancellationToken = default)
    {
        options ??= NbdClientOptions.Default;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(options.ConnectTimeout);
        var socket = uri.IsUnix
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(uri.EndPoint, deadline.Token);
            var stream = new NetworkStream(socket, ownsSocket: true);
            var transport = new DuplexPipe(
                PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: options.ReceiveBufferSize, leaveOpen: true)),
                PipeWriter.Create(stream, new StreamPipeWriterOptions(minimumBufferSize: options.SendBufferSize, leaveOpen: true)));
            if (uri.RequiresTls)
            {
                options = options with { TlsMode = NbdTlsMode.Required };
            }

            return await ConnectAsync(transport, uri.ExportName, logger, options, name ?? uri.ToString(), stream, deadline.Token, uri.Host);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new IOException($"connecting to {uri} did not finish within {options.ConnectTimeout.TotalSeconds:0.#} s");
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Runs the handshake over any duplex pipe (an in-memory one in tests) and starts the transmission phase.</summary>
    /// <param name="transportOwner">Disposed once the connection is over (the socket's stream).</param>
    /// <param name="tlsHost">The name or address the server's TLS certificate must carry, if TLS is used.</param>
    /// <exception cref="NbdHandshakeException">The server refused the export or TLS, or broke the handshake, or the TLS handshake failed.</exception>
    public static async Task<NbdClient> ConnectAsync(
        IDuplexPipe transport, string exportName, ILogger logger, NbdClientOptions? options = null, string? name = null,
        IAsyncDisposable? transportOwner = null, CancellationToken cancellationToken = default, string tlsHost = "localhost")
    {
        options ??= NbdClientOptions.Default;
        if (options.TlsMode != NbdTlsMode.Off && options.TlsAuthentication is null)
        {
            throw new ArgumentException($"NBD TLS mode {options.TlsMode} needs the TLS authentication options (the trusted CA)", nameof(options));
        }

        NbdTlsTransport? tls = null;
        try
        {
            var export = await NbdClientHandshake.RunAsync(
                transport, exportName, options.RequestBlockSizes, options.TlsMode,
                async carrier =>
                {
                    tls = await NbdTlsTransport.ConnectAsync(
                        carrier, options.TlsAuthentication!(tlsHost), options.ReceiveBufferSize, options.SendBufferSize, cancellationToken);
                    return tls;
                },
                cancellationToken);
            var client = new NbdClient(
                (IDuplexPipe?)tls ?? transport, clean => CloseUnderAsync(tls, transport, transportOwner, clean), export, options, logger, name ?? exportName);
            NbdClientLog.Connected(logger, client.Name, export.Size, export.TransmissionFlags, export.StructuredReplies,
                export.BaseAllocationContextId is not null, tls?.Description ?? "no");
            return client;
        }
        catch (Exception exception)
        {
            try
            {
                if (tls is not null)
                {
                    await tls.Input.CompleteAsync();
                    await tls.Output.CompleteAsync(new IOException("the NBD handshake failed"));
                }

                await transport.Input.CompleteAsync();
                await transport.Output.CompleteAsync();
            }
            catch (Exception closing) when (IsTransportFailure(closing))
            {
                // The connection is over either way.
            }

            await CloseUnderAsync(tls, transport, transportOwner, clean: false);
            throw exception switch
            {
                NbdReplyProtocolException => new NbdHandshakeException(0, $"the server broke the handshake: {exception.Message}"),
                AuthenticationException => new NbdHandshakeException(0, $"the TLS handshake with the server failed: {exception.Message}"),
                _ => exception,
            };
        }
    }

    /// <summary>
    /// Closes what lies under a connection's pipe once both its halves are completed: TLS (with close_notify after a
    /// clean end), then the pipe that carried it, then its owner.
    /// </summary>
    private static async ValueTask CloseUnderAsync(NbdTlsTransport? tls, IDuplexPipe carrier, IAsyncDisposable? owner, bool clean)
    {
        if (tls is not null)
        {
            await tls.CloseAsync(notify: clean);
            try
            {
                await carrier.Input.CompleteAsync();
                await carrier.Output.CompleteAsync(clean ? null : new IOException("the NBD connection ended"));
            }
            catch (Exception exception) when (IsTransportFailure(exception))
            {
                // The connection is over either way.
            }
        }

        if (owner is not null)
        {
            await owner.DisposeAsync();
        }
    }

    public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken = default) =>
        SubmitAsync(NbdWire.CmdRead, 0, offset, destination.Length, destination, default, null, cancellationToken);

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, IoFlags flags, CancellationToken cancellationToken = default) =>
        SubmitAsync(NbdWire.CmdWrite, CommandFlags(flags), offset, source.Length, default, source, null, cancellationToken);

    public ValueTask FlushAsync(CancellationToken cancellationToken = default) =>
        SubmitAsync(NbdWire.CmdFlush, 0, 0, 0, default, default, null, cancellationToken);

    public ValueTask TrimAsync(long offset, long length, IoFlags flags, CancellationToken cancellationToken = default) =>
        SubmitAsync(NbdWire.CmdTrim, CommandFlags(flags & IoFlags.Fua), offset, length, default, default, null, cancellationToken);

    public ValueTask WriteZeroesAsync(long offset, long length, IoFlags flags, CancellationToken cancellationToken = default) =>
        SubmitAsync(NbdWire.CmdWriteZeroes, CommandFlags(flags), offset, length, default, default, null, cancellationToken);

    public ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken = default) =>
        SubmitAsync(NbdWire.CmdCache, 0, offset, length, default, default, null, cancellationToken);

    /// <summary>BLOCK_STATUS for <c>base:allocation</c>; a server that did not agree to the context is asked nothing.</summary>
    public async ValueTask<IReadOnlyList<AllocationExtent>> GetAllocationAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        if (Export.BaseAllocationContextId is null)
        {
            throw new BlockDeviceException(StorageError.NotSupported, $"{Name} did not agree to base:allocation; BLOCK_STATUS is not available");
        }

        var extents = new List<AllocationExtent>();
        await SubmitAsync(NbdWire.CmdBlockStatus, 0, offset, length, default, default, extents, cancellationToken);
        return extents;
    }

    /// <summary>
    /// Ends the connection now: the transport is closed and every request in flight fails with
    /// <see cref="NbdConnectionLostException"/> (reason <see cref="NbdClientEndReason.Aborted"/> and <paramref name="detail"/>).
    /// Returns at once; <see cref="Closed"/> completes when the requests have failed.
    /// </summary>
    public void Abort(string detail) => End(NbdClientEndReason.Aborted, detail);

    /// <summary>
    /// Ends the connection cleanly: no new requests, NBD_CMD_DISC after the ones already queued, then waits for the
    /// server to answer them and close, up to <see cref="NbdClientOptions.DisconnectTimeout"/>, after which it aborts.
    /// </summary>
    public async Task DisconnectAsync()
    {
        lock (_slotLock)
        {
            if (!_refusing)
            {
                _refusing = true;
                _disconnecting = true;
                _disconnectQueued = true;
            }
        }

        Send(null);

        try
        {
            await _closed.Task.WaitAsync(_options.DisconnectTimeout);
        }
        catch (TimeoutException)
        {
            Abort($"the server did not close the connection within {_options.DisconnectTimeout.TotalSeconds:0.#} s of NBD_CMD_DISC");
            await _closed.Task;
        }
    }

    public async ValueTask DisposeAsync() => await DisconnectAsync();

    /// <summary>The <see cref="Stopwatch"/> timestamp at which the oldest request in flight started, or null when none is.</summary>
    public long? OldestInFlightStarted()
    {
        long? oldest = null;
        lock (_slotLock)
        {
            foreach (var slot in _slots)
            {
                if (slot.InFlight && (oldest is null || slot.Started < oldest))
                {
                    oldest = slot.Started;
                }
            }
        }

        return oldest;
    }

    /// <summary>Completes a request that is both sent and answered (see <see cref="NbdClientRequest.PartDone"/>).</summary>
    internal void Complete(NbdClientRequest request)
    {
        lock (_slotLock)
        {
            if (!request.InFlight)
            {
                return;
            }

            request.InFlight = false;
            _inFlight--;
        }

        if (request.Error != NbdWire.Success)
        {
            request.SetException(NbdClientErrors.ToException(Name, request.Type, request.Error, request.ErrorMessage));
        }
        else
        {
            request.SetResult();
        }
    }

    /// <summary>The caller has the result: the slot can take the next request.</summary>
    internal void Release(NbdClientRequest request)
    {
        request.Clear();
        lock (_slotLock)
        {
            _free[_freeCount++] = request.Slot;
        }

        _admission.Release();
    }

    private ValueTask SubmitAsync(
        ushort type, ushort flags, long offset, long length, Memory<byte> destination, ReadOnlyMemory<byte> payload,
        List<AllocationExtent>? extents, CancellationToken cancellationToken)
    {
        if (offset < 0 || length < 0 || length > uint.MaxValue)
        {
            return ValueTask.FromException(new BlockDeviceException(StorageError.InvalidArgument,
                $"{NbdErrors.CommandName(type)} of {length} bytes at {offset} cannot be expressed in NBD"));
        }

        return _admission.Wait(0)
            ? Start(type, flags, (ulong)offset, (uint)length, destination, payload, extents)
            : SubmitWhenAdmittedAsync(type, flags, offset, length, destination, payload, extents, cancellationToken);
    }

    private async ValueTask SubmitWhenAdmittedAsync(
        ushort type, ushort flags, long offset, long length, Memory<byte> destination, ReadOnlyMemory<byte> payload,
        List<AllocationExtent>? extents, CancellationToken cancellationToken)
    {
        await _admission.WaitAsync(cancellationToken);
        await Start(type, flags, (ulong)offset, (uint)length, destination, payload, extents);
    }

    /// <summary>Takes a slot (admission already granted), queues the request and writes the queue unless another thread is.</summary>
    private ValueTask Start(
        ushort type, ushort flags, ulong offset, uint length, Memory<byte> destination, ReadOnlyMemory<byte> payload, List<AllocationExtent>? extents)
    {
        NbdClientRequest request;
        lock (_slotLock)
        {
            if (_refusing)
            {
                _admission.Release();
                return ValueTask.FromException(Lost());
            }

            request = _slots[_free[--_freeCount]];
            request.Begin(type, flags, offset, length, destination, payload, extents);
            request.InFlight = true;
            _inFlight++;
        }

        Send(request);
        return request.AsValueTask();
    }

    /// <summary>Records why the connection ended (the first reason wins) and makes both loops stop.</summary>
    private void End(NbdClientEndReason reason, string detail)
    {
        if (Interlocked.CompareExchange(ref _ended, 1, 0) != 0)
        {
            return;
        }

        _endReason = reason;
        _endDetail = detail;
        lock (_slotLock)
        {
            _refusing = true;
        }

        PipeWake.Both(_transport);
    }

    /// <summary>Once both loops are done: closes the transport, then fails whatever is still in flight.</summary>
    private async Task CloseWhenDoneAsync()
    {
        await _receiver;
        End(NbdClientEndReason.ServerClosed, "the connection closed");
        await CloseWriterAsync();
        try
        {
            await _transport.Input.CompleteAsync();

            // After a clean disconnect everything was flushed; otherwise what is still buffered is dropped, not
            // written into a socket the server may have closed (which would fail with a broken pipe).
            await _transport.Output.CompleteAsync(_endReason == NbdClientEndReason.Disconnected ? null : Lost());
        }
        catch (Exception exception) when (IsTransportFailure(exception))
        {
            // The connection is over either way.
        }

        await _closeUnderTransport(_endReason == NbdClientEndReason.Disconnected);

        var failed = new List<NbdClientRequest>();
        lock (_slotLock)
        {
            foreach (var slot in _slots)
            {
                if (slot.InFlight)
                {
                    slot.InFlight = false;
                    _inFlight--;
                    failed.Add(slot);
                }
            }
        }

        NbdClientLog.Ended(_logger, LevelOf(_endReason), Name, _endReason, _endDetail, failed.Count);
        foreach (var request in failed)
        {
            request.SetException(Lost());
        }

        _closed.SetResult(Lost());
    }

    private NbdConnectionLostException Lost() =>
        Volatile.Read(ref _ended) == 0
            ? new NbdConnectionLostException(Name, NbdClientEndReason.Disconnected, "the connection is being closed")
            : new NbdConnectionLostException(Name, _endReason, _endDetail);

    private static LogLevel LevelOf(NbdClientEndReason reason) => reason switch
    {
        NbdClientEndReason.Disconnected => LogLevel.Debug,
        NbdClientEndReason.Aborted => LogLevel.Information,
        _ => LogLevel.Warning,
    };

    private static ushort CommandFlags(IoFlags flags) =>
        (ushort)(((flags & IoFlags.Fua) != 0 ? NbdWire.CmdFlagFua : 0) | ((flags & IoFlags.NoHole) != 0 ? NbdWire.CmdFlagNoHole : 0));
}

using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Replicator.Protocol.Nbd;

/// <summary>
/// Serves an <see cref="INbdExportCatalog"/> over NBD on any number of TCP and Unix socket end points,
/// one <see cref="NbdServerSession"/> per connection. <see cref="StopAsync"/> stops accepting, lets each
/// connection finish what it has in flight for <see cref="NbdServerOptions.ShutdownTimeout"/>, then
/// closes whatever is left.
/// </summary>
/// <remarks>
/// Bounds: at most <see cref="NbdServerOptions.MaxConnections"/> connections at once (one more is closed as it is
/// accepted, with a log line at most once a second) and <see cref="NbdServerOptions.MaxConnectionsPerExport"/> in
/// transmission on one export (counted by the <see cref="NbdExportConnectionLimit"/> the sessions share).
/// </remarks>
internal sealed class NbdServer : IAsyncDisposable
{
    private readonly INbdExportCatalog _catalog;
    private readonly NbdServerOptions _options;
    private readonly NbdServerOptions _unixOptions;
    private readonly ILogger _logger;
    private readonly ILogger _sessionLogger;
    private readonly List<NbdListener> _listeners = [];
    private readonly List<Task> _acceptLoops = [];
    private readonly ConcurrentDictionary<NbdServerSession, (Task Run, Socket Socket)> _sessions = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _stateLock = new();
    private readonly NbdExportConnectionLimit _exportLimit;
    private readonly Lock _refusalLock = new();
    private Task? _stopTask;
    private bool _started;
    private long _connections;
    private int _open;
    private long _refusedSinceLog;
    private long _lastRefusalLog = long.MinValue;

    public NbdServer(INbdExportCatalog catalog, ILoggerFactory loggerFactory, NbdServerOptions? options = null)
    {
        _catalog = catalog;
        _options = options ?? NbdServerOptions.Default;
        _options.Validate();
        _unixOptions = _options with { TlsMode = _options.UnixSocketTlsMode };
        _exportLimit = new NbdExportConnectionLimit(_options.MaxConnectionsPerExport);
        _logger = loggerFactory.CreateLogger<NbdServer>();
        _sessionLogger = loggerFactory.CreateLogger<NbdServerSession>();
    }

    /// <summary>The end points bound by <see cref="Start"/>, with real port numbers where 0 was asked for.</summary>
    public IReadOnlyList<EndPoint> EndPoints => [.. _listeners.Select(l => l.EndPoint)];

    /// <summary>Connections currently open.</summary>
    public int ConnectionCount => _sessions.Count;

    /// <summary>Connections in the transmission phase on <paramref name="export"/>.</summary>
    public int ConnectionsOn(string export) => _exportLimit.CountOf(export);

    /// <summary>Binds every end point and starts accepting. If any cannot be bound, none stays bound.</summary>
    public void Start(IEnumerable<EndPoint> endPoints)
    {
        lock (_stateLock)
        {
            if (_started || _stopTask is not null)
            {
                throw new InvalidOperationException("the NBD server was already started");
            }

            try
            {
                foreach (var endPoint in endPoints)
                {
                    _listeners.Add(NbdListener.Bind(endPoint, _logger, _options.UnixSocketGroupId));
                }
            }
            catch
            {
                _listeners.ForEach(l => l.Dispose());
                _listeners.Clear();
                throw;
            }

            _started = true;

            foreach (var listener in _listeners)
            {
                NbdLog.Listening(_logger, listener.EndPoint);
                _acceptLoops.Add(AcceptLoopAsync(listener));
            }
        }
    }

    /// <summary>
    /// Stops accepting, asks every connection to finish its requests in flight, waits up to
    /// <see cref="NbdServerOptions.ShutdownTimeout"/> (or until <paramref name="cancellationToken"/> fires),
    /// then aborts what is left. Calling it again waits for the first stop.
    /// </summary>
    public Task StopAsync(CancellationToken cancellationToken = default)
    {
        lock (_stateLock)
        {
            return _stopTask ??= StopCoreAsync(cancellationToken);
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync();

    private async Task StopCoreAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        _listeners.ForEach(l => l.Dispose());
        await Task.WhenAll(_acceptLoops);

        var sessions = _sessions.ToArray();
        foreach (var session in sessions)
        {
            session.Key.BeginShutdown();
        }

        var all = Task.WhenAll(sessions.Select(s => s.Value.Run));
        try
        {
            await all.WaitAsync(_options.ShutdownTimeout, cancellationToken);
        }
        catch (Exception exception) when (exception is TimeoutException or OperationCanceledException)
        {
            NbdLog.StopTimedOut(_logger, _sessions.Count, _options.ShutdownTimeout);
            foreach (var session in sessions)
            {
                session.Key.Abort();
            }

            try
            {
                await all.WaitAsync(_options.AbortTimeout, CancellationToken.None);
            }
            catch (TimeoutException)
            {
                NbdLog.AbortTimedOut(_logger, _sessions.Count);
                foreach (var session in _sessions)
                {
                    session.Value.Socket.Dispose();
                }
            }
        }

        NbdLog.Stopped(_logger);
    }

    private async Task AcceptLoopAsync(NbdListener listener)
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.Socket.AcceptAsync(_stopping.Token);
            }
            catch (Exception) when (_stopping.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException exception)
            {
                NbdLog.AcceptFailed(_logger, listener.EndPoint, exception);
                await Task.Delay(TimeSpan.FromMilliseconds(100), CancellationToken.None);
                continue;
            }

            StartSession(listener, socket);
        }
    }

    private void StartSession(NbdListener listener, Socket socket)
    {
        var id = Interlocked.Increment(ref _connections);
        string name;
        NetworkStream stream;
        try
        {
            name = listener.IsTcp ? $"{socket.RemoteEndPoint}#{id}" : $"unix:{listener.SocketPath}#{id}";
            if (listener.IsTcp)
            {
                socket.NoDelay = true;
            }

            stream = new NetworkStream(socket, ownsSocket: true);
        }
        catch (Exception exception) when (exception is SocketException or IOException or ObjectDisposedException)
        {
            // The client reset the connection between the accept and now: there is nothing to serve, and the
            // accept loop goes on.
            socket.Dispose();
            return;
        }

        if (Interlocked.Increment(ref _open) > _options.MaxConnections)
        {
            Interlocked.Decrement(ref _open);
            Refuse(name);
            stream.Dispose();
            return;
        }

        var transport = new SocketDuplexPipe(socket, stream, _options.ReceiveBufferSize, _options.SendBufferSize);
        var session = new NbdServerSession(transport, _catalog, listener.IsTcp ? _options : _unixOptions, _sessionLogger, name, _exportLimit);
        var registered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _sessions[session] = (RunSessionAsync(session, socket, stream, registered.Task), socket);
        registered.SetResult();
    }

    /// <summary>Runs one connection once it is registered, so its removal can never precede its registration.</summary>
    private async Task RunSessionAsync(NbdServerSession session, Socket socket, NetworkStream stream, Task registered)
    {
        await registered;
        try
        {
            await session.RunAsync();
        }
        finally
        {
            _sessions.TryRemove(session, out _);
            Interlocked.Decrement(ref _open);
            try
            {
                socket.Shutdown(SocketShutdown.Both);
            }
            catch (Exception exception) when (exception is SocketException or ObjectDisposedException)
            {
                // The peer is already gone, or a stop that gave up waiting closed the socket.
            }

            await stream.DisposeAsync();
        }
    }

    /// <summary>
    /// Logs a connection beyond <see cref="NbdServerOptions.MaxConnections"/>, closed before anything was sent, at
    /// most once a second, so a flood of connections cannot flood the log too.
    /// </summary>
    private void Refuse(string name)
    {
        long refused;
        lock (_refusalLock)
        {
            _refusedSinceLog++;
            var now = Environment.TickCount64;
            if (_lastRefusalLog != long.MinValue && now - _lastRefusalLog < 1000)
            {
                return;
            }

            _lastRefusalLog = now;
            refused = _refusedSinceLog;
            _refusedSinceLog = 0;
        }

        NbdLog.TooManyConnections(_logger, name, _options.MaxConnections, refused);
    }
}

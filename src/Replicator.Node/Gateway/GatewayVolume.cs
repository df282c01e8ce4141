using System.Diagnostics;
using System.Runtime.CompilerServices;
using Replicator.Core.Devices;
using Replicator.Protocol.Nbd.Client;

namespace Replicator.Node.Gateway;

/// <summary>
/// A volume as the gateway exports it: every request goes to the node serving the volume (the active path) and,
/// if that path fails under it, again to the other node, so the client sees no error while one node serves.
/// </summary>
/// <remarks>
/// <para><b>Request path.</b> A request reads the active path without a lock, picks the connection of that path
/// with fewer requests in flight and sends itself there. If it fails because the path failed (the connection was
/// lost or aborted, or the node answered EIO, EPERM or ESHUTDOWN) it marks the path failed, which aborts the
/// path's connections, so every other request in flight on it fails the same way, and each of them sends itself
/// again on the path that is active then (waiting for one, up to <see cref="GatewayOptions.NoPathTimeout"/>, if
/// none is). Block writes are idempotent and a FLUSH re-sent after them covers them, so re-sending is safe.
/// Errors that are the request's own (EINVAL, ENOSPC, ENOTSUP) go back to the client as they are, and so does an
/// error every node answered for the same request.</para>
/// <para><b>Timeouts.</b> A watchdog (<see cref="Tick"/>) fails a path whose oldest request waited longer than
/// <see cref="GatewayOptions.Timeout"/>, aborting its connections as above, when the other node can take over.</para>
/// <para><b>Connections.</b> The paths connect when the first client attaches and disconnect a little after the
/// last one leaves (<see cref="GatewayOptions.IdleDisconnect"/>), so a node counts the gateway as attached to a
/// volume exactly while a client uses it through the gateway, and a volume nobody uses can be deleted.</para>
/// <para><b>Moving back.</b> A move that no failure forces (back to the preferred node once its replica is up to
/// date, or to a newly preferred node) happens only <see cref="GatewayOptions.HoldDown"/> after the last move.
/// New requests go to the new path; those in flight on the old one finish there, so nothing waits.</para>
/// </remarks>
internal sealed partial class GatewayVolume : IBlockDevice, IAsyncDisposable
{
    private readonly GatewayOptions _options;
    private readonly ILogger _logger;
    private readonly GatewayPath[] _paths;
    private GatewayPath? _active;
    private long _size;
    private long _reissued;

    public GatewayVolume(string name, IReadOnlyList<GatewayNode> nodes, NodeVolumeView firstView, GatewayOptions options, ILogger logger)
    {
        Name = name;
        _options = options;
        _logger = logger;
        _size = firstView.SizeBytes;
        _preferred = firstView.PreferredNode;
        _paths = [.. nodes.Select((node, i) => new GatewayPath(this, node, i, options, logger))];
    }

    public string Name { get; }

    public long Size => Volatile.Read(ref _size);

    /// <summary>
    /// Everything the nodes offer, MULTI_CONN included: every write the gateway acknowledged is on both nodes
    /// (protocol C), and a flush on the serving node makes it durable on every node that is connected.
    /// </summary>
    public DeviceFeatures Features => DeviceFeatures.AllWritable;

    public IReadOnlyList<GatewayPath> Paths => _paths;

    /// <summary>Requests sent again on another path after theirs failed.</summary>
    public long ReissuedRequests => Interlocked.Read(ref _reissued);

    public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken = default) =>
        RunAsync(new ReadOperation(offset, destination), cancellationToken);

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, IoFlags flags, CancellationToken cancellationToken = default) =>
        RunAsync(new WriteOperation(offset, source, flags), cancellationToken);

    public ValueTask FlushAsync(CancellationToken cancellationToken = default) =>
        RunAsync(new FlushOperation(), cancellationToken);

    public ValueTask TrimAsync(long offset, long length, IoFlags flags, CancellationToken cancellationToken = default) =>
        RunAsync(new RangeOperation(RangeCommand.Trim, offset, length, flags), cancellationToken);

    public ValueTask WriteZeroesAsync(long offset, long length, IoFlags flags, CancellationToken cancellationToken = default) =>
        RunAsync(new RangeOperation(RangeCommand.WriteZeroes, offset, length, flags), cancellationToken);

    public ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken = default) =>
        RunAsync(new RangeOperation(RangeCommand.Cache, offset, length, IoFlags.None), cancellationToken);

    public async ValueTask<IReadOnlyList<AllocationExtent>> GetAllocationAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        var result = new StrongBox<IReadOnlyList<AllocationExtent>>();
        await RunAsync(new AllocationOperation(offset, length, result), cancellationToken);
        return result.Value!;
    }

    /// <summary>One request, sent to the active path and sent again wherever the volume moves while it fails.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask RunAsync<TOperation>(TOperation operation, CancellationToken cancellationToken)
        where TOperation : struct, IPathOperation
    {
        var started = Stopwatch.GetTimestamp();
        var answeredWithError = 0;
        var attempts = 0;
        while (true)
        {
            if (!TryPickActive(out var path, out var client))
            {
                (path, client) = await WaitForPathAsync(started, cancellationToken);
            }

            if (attempts++ > 0)
            {
                Interlocked.Increment(ref _reissued);
            }

            try
            {
                await operation.RunAsync(client, cancellationToken);
                return;
            }
            catch (NbdConnectionLostException lost)
            {
                OnPathFailed(path, client, $"{operation.Command} found the connection lost: {lost.Detail}");
            }
            catch (BlockDeviceException error) when (error.Error is StorageError.Io or StorageError.NotPermitted or StorageError.Shutdown)
            {
                OnPathFailed(path, client, error.Message);
                answeredWithError |= 1 << path.Index;
                if (answeredWithError == (1 << _paths.Length) - 1)
                {
                    throw;
                }
            }
        }
    }

    private bool TryPickActive(out GatewayPath path, out NbdClient client)
    {
        path = Volatile.Read(ref _active)!;
        if (path is not null && path.TryPick(out var picked))
        {
            client = picked;
            return true;
        }

        client = null!;
        return false;
    }

    /// <summary>Waits until a path is active (failing a dead active path on the way); EIO after <see cref="GatewayOptions.NoPathTimeout"/>.</summary>
    private async ValueTask<(GatewayPath, NbdClient)> WaitForPathAsync(long started, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task changed;
            lock (_lock)
            {
                if (_disposed)
                {
                    throw new BlockDeviceException(StorageError.Shutdown, $"the gateway is closing volume '{Name}'");
                }

                if (TryPickActive(out var path, out var client))
                {
                    return (path, client);
                }

                if (_active is { } dead)
                {
                    FailLocked(dead, "its connections are closed");
                    continue;
                }

                changed = _pathChanged.Task;
            }

            var remaining = _options.NoPathTimeout - Stopwatch.GetElapsedTime(started);
            if (remaining <= TimeSpan.Zero)
            {
                throw new BlockDeviceException(StorageError.Io,
                    $"no node could serve volume '{Name}' for {_options.NoPathTimeout.TotalSeconds:0.#} s: {DescribePaths()}");
            }

            try
            {
                await changed.WaitAsync(remaining, cancellationToken);
            }
            catch (TimeoutException)
            {
            }
        }
    }

    private enum RangeCommand
    {
        Trim,
        WriteZeroes,
        Cache,
    }

    private interface IPathOperation
    {
        string Command { get; }

        ValueTask RunAsync(NbdClient client, CancellationToken cancellationToken);
    }

    private readonly struct ReadOperation(long offset, Memory<byte> destination) : IPathOperation
    {
        public string Command => "READ";

        public ValueTask RunAsync(NbdClient client, CancellationToken cancellationToken) => client.ReadAsync(offset, destination, cancellationToken);
    }

    private readonly struct WriteOperation(long offset, ReadOnlyMemory<byte> source, IoFlags flags) : IPathOperation
    {
        public string Command => "WRITE";

        public ValueTask RunAsync(NbdClient client, CancellationToken cancellationToken) => client.WriteAsync(offset, source, flags, cancellationToken);
    }

    private readonly struct FlushOperation : IPathOperation
    {
        public string Command => "FLUSH";

        public ValueTask RunAsync(NbdClient client, CancellationToken cancellationToken) => client.FlushAsync(cancellationToken);
    }

    private readonly struct RangeOperation(RangeCommand command, long offset, long length, IoFlags flags) : IPathOperation
    {
        public string Command => command.ToString();

        public ValueTask RunAsync(NbdClient client, CancellationToken cancellationToken) => command switch
        {
            RangeCommand.Trim => client.TrimAsync(offset, length, flags, cancellationToken),
            RangeCommand.WriteZeroes => client.WriteZeroesAsync(offset, length, flags, cancellationToken),
            _ => client.CacheAsync(offset, length, cancellationToken),
        };
    }

    /// <summary>BLOCK_STATUS where the node agreed to base:allocation; "all data" (always true) where it did not.</summary>
    private readonly struct AllocationOperation(long offset, long length, StrongBox<IReadOnlyList<AllocationExtent>> result) : IPathOperation
    {
        public string Command => "BLOCK_STATUS";

        public async ValueTask RunAsync(NbdClient client, CancellationToken cancellationToken) =>
            result.Value = client.Features.HasFlag(DeviceFeatures.BlockStatus)
                ? await client.GetAllocationAsync(offset, length, cancellationToken)
                : [new AllocationExtent(length, AllocationState.Data)];
    }
}

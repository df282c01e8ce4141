using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Replicator.Core.Devices;
using Replicator.Node.Gateway;

namespace Replicator.IntegrationTests.Gateway;

/// <summary>
/// The gateway's routing in one process, against two NBD servers on real Unix sockets whose disks fail or stall
/// on cue: which errors move a volume and which reach the client, that requests in flight are sent again, the
/// timeout, the hold-down, and a change of preferred node made while requests run.
/// </summary>
public sealed class GatewayRoutingTests : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);
    private static readonly GatewayOptions Options = new()
    {
        Timeout = TimeSpan.FromMilliseconds(500),
        HoldDown = TimeSpan.FromSeconds(1),
        NoPathTimeout = TimeSpan.FromSeconds(1),
        MinReconnectDelay = TimeSpan.FromMilliseconds(50),
        MaxReconnectDelay = TimeSpan.FromMilliseconds(200),
        IdleDisconnect = TimeSpan.FromMilliseconds(200),
    };

    private readonly string _directory = Directory.CreateTempSubdirectory("gateway-routing-").FullName;
    private readonly CancellationTokenSource _watchdog = new();
    private InProcessNode _a = null!;
    private InProcessNode _b = null!;
    private GatewayVolume _volume = null!;
    private Task _ticks = Task.CompletedTask;

    public async Task InitializeAsync()
    {
        _a = new InProcessNode("a", _directory);
        _b = new InProcessNode("b", _directory);
        _volume = new GatewayVolume(InProcessNode.Volume, [_a.Node, _b.Node], InProcessNode.View("a"), Options, NullLogger.Instance);
        _volume.Attach();
        _ticks = Task.Run(async () =>
        {
            while (!_watchdog.IsCancellationRequested)
            {
                _volume.Tick();
                await Task.Delay(Options.WatchdogInterval);
            }
        });
        await WaitUntilAsync(() => _volume.ActiveNode == "a" && _volume.Paths.All(p => p.State == PathState.Up), "both paths up, a active");
    }

    public async Task DisposeAsync()
    {
        await _watchdog.CancelAsync();
        await _ticks;
        await _volume.DisposeAsync();
        await _a.DisposeAsync();
        await _b.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task The_nodes_see_the_gateway_only_while_a_client_is_attached()
    {
        Assert.Equal((2, 2), (_a.Connections, _b.Connections));

        _volume.Detach();
        await WaitUntilAsync(() => _a.Connections == 0 && _b.Connections == 0, "the paths disconnected");
        Assert.Null(_volume.ActiveNode);
        Assert.All(_volume.Paths, p => Assert.Equal(PathState.Idle, p.State));

        _volume.Attach();
        _volume.Attach();
        _volume.Detach();
        await _volume.WriteAsync(0, Pattern(512, 9), IoFlags.None).AsTask().WaitAsync(Bound);
        Assert.Equal(Pattern(512, 9), _a.Device.Read(0, 512));
        await Task.Delay(Options.IdleDisconnect * 2);
        Assert.Equal((2, 2, 1), (_a.Connections, _b.Connections, _volume.Attachments));
    }

    [Fact]
    public async Task Requests_go_to_the_preferred_node_and_an_error_of_the_requests_own_reaches_the_client_without_a_switch()
    {
        await _volume.WriteAsync(4096, Pattern(4096, 1), IoFlags.Fua);
        Assert.Equal(Pattern(4096, 1), _a.Device.Read(4096, 4096));
        Assert.Equal(0, _b.Device.Calls);

        _a.Device.Fault = (_, _) => new BlockDeviceException(StorageError.NoSpace, "the pool is full");
        var full = await Assert.ThrowsAsync<BlockDeviceException>(async () => await _volume.WriteAsync(0, new byte[512], IoFlags.None));
        var pastEnd = await Assert.ThrowsAsync<BlockDeviceException>(async () => await _volume.ReadAsync(InProcessNode.Size, new byte[512]));

        Assert.Equal(StorageError.NoSpace, full.Error);
        Assert.Equal(StorageError.InvalidArgument, pastEnd.Error);
        Assert.Equal(("a", 0L, 0L), (_volume.ActiveNode, _volume.Switches, _volume.ReissuedRequests));
    }

    [Theory]
    [InlineData(StorageError.Io)]
    [InlineData(StorageError.NotPermitted)]
    [InlineData(StorageError.Shutdown)]
    public async Task A_node_error_moves_the_volume_and_the_request_is_answered_by_the_other_node(StorageError error)
    {
        _a.Device.Fault = (_, _) => new BlockDeviceException(error, "this node cannot serve");

        await _volume.WriteAsync(8192, Pattern(512, 2), IoFlags.None);

        Assert.Equal(Pattern(512, 2), _b.Device.Read(8192, 512));
        Assert.Equal(("b", 1L, 1L), (_volume.ActiveNode, _volume.Switches, _volume.ReissuedRequests));
        Assert.Contains("cannot serve", _volume.Describe().LastSwitch!.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_error_every_node_answers_reaches_the_client()
    {
        _a.Device.Fault = (_, _) => new BlockDeviceException(StorageError.Io, "bad sector on a");
        _b.Device.Fault = (_, _) => new BlockDeviceException(StorageError.Io, "bad sector on b");

        var error = await Assert.ThrowsAsync<BlockDeviceException>(async () => await _volume.ReadAsync(0, new byte[512]));

        Assert.Equal(StorageError.Io, error.Error);
        Assert.Contains("bad sector", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Every_request_in_flight_on_a_node_that_dies_is_sent_again_on_the_other()
    {
        var release = new TaskCompletionSource();
        _a.Device.Gate = ct => release.Task.WaitAsync(ct);
        var writes = Enumerable.Range(0, 40).Select(i => _volume.WriteAsync(i * 4096L, Pattern(4096, i), IoFlags.None).AsTask()).ToList();
        writes.Add(_volume.FlushAsync().AsTask());
        await WaitUntilAsync(() => _a.Device.Calls == 41, "a held every request");

        await _a.StopAsync();
        await Task.WhenAll(writes).WaitAsync(Bound);

        for (var i = 0; i < 40; i++)
        {
            Assert.Equal(Pattern(4096, i), _b.Device.Read(i * 4096L, 4096));
        }

        Assert.Equal("b", _volume.ActiveNode);
        Assert.Equal(41, _volume.ReissuedRequests);
    }

    [Fact]
    public async Task A_node_that_does_not_answer_within_the_timeout_is_failed_over_and_the_request_answered_by_the_other()
    {
        _a.Device.Gate = ct => Task.Delay(Timeout.Infinite, ct);
        var started = Stopwatch.StartNew();

        await _volume.WriteAsync(0, Pattern(512, 3), IoFlags.None).AsTask().WaitAsync(Bound);

        Assert.True(started.Elapsed >= Options.Timeout, $"moved after {started.Elapsed}, before the timeout");
        Assert.Equal(Pattern(512, 3), _b.Device.Read(0, 512));
        Assert.Equal("b", _volume.ActiveNode);
        Assert.Contains("waited", _volume.Describe().LastSwitch!.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_gateway_moves_back_only_once_the_node_reports_the_volume_in_sync_and_the_hold_down_has_passed()
    {
        _a.Device.Fault = (_, _) => new BlockDeviceException(StorageError.Io, "disk gone");
        await _volume.FlushAsync();
        _a.Device.Fault = null;
        await WaitUntilAsync(() => _volume.Paths[0].State == PathState.Up, "a reconnected");

        _volume.UpdateView(_a.Node, InProcessNode.View("a", inSync: false));
        await Task.Delay(Options.HoldDown + TimeSpan.FromMilliseconds(200));
        Assert.Equal("b", _volume.ActiveNode);

        var inSync = Stopwatch.StartNew();
        _volume.UpdateView(_a.Node, InProcessNode.View("a"));
        await WaitUntilAsync(() => _volume.ActiveNode == "a", "moved back to a");

        Assert.Equal(2, _volume.Switches);
        Assert.StartsWith("failback", _volume.Describe().LastSwitch!.Reason, StringComparison.Ordinal);
        Assert.True(inSync.Elapsed < Options.HoldDown, "the hold-down had already passed when a reported in sync");
    }

    [Fact]
    public async Task A_failback_waits_for_the_hold_down_after_the_last_switch()
    {
        _a.Device.Fault = (_, _) => new BlockDeviceException(StorageError.Io, "disk gone");
        await _volume.FlushAsync();
        var switched = Stopwatch.StartNew();
        _a.Device.Fault = null;
        await WaitUntilAsync(() => _volume.Paths[0].State == PathState.Up, "a reconnected");

        _volume.UpdateView(_a.Node, InProcessNode.View("a"));
        Assert.Equal("b", _volume.ActiveNode);
        await WaitUntilAsync(() => _volume.ActiveNode == "a", "moved back to a");
        Assert.True(switched.Elapsed >= Options.HoldDown, $"moved back {switched.Elapsed} after the switch");
    }

    [Fact]
    public async Task Changing_the_preferred_node_moves_the_volume_while_requests_run_and_none_fails()
    {
        using var stop = new CancellationTokenSource();
        var load = Task.Run(async () =>
        {
            var buffer = new byte[4096];
            var count = 0;
            for (var i = 0; !stop.IsCancellationRequested; i = (i + 1) % 512)
            {
                await _volume.WriteAsync(i * 4096L, Pattern(4096, i), IoFlags.None);
                await _volume.ReadAsync(i * 4096L, buffer);
                count++;
            }

            return count;
        });
        await WaitUntilAsync(() => _a.Device.Calls > 100, "load running on a");

        _volume.UpdateView(_a.Node, InProcessNode.View("b"));
        _volume.UpdateView(_b.Node, InProcessNode.View("b"));
        await WaitUntilAsync(() => _volume.ActiveNode == "b", "moved to b");
        var onB = _b.Device.Calls;
        await WaitUntilAsync(() => _b.Device.Calls > onB + 100, "load running on b");
        await stop.CancelAsync();

        Assert.True(await load.WaitAsync(Bound) >= 100);
        Assert.Equal(("b", 1L, 0L), (_volume.PreferredNode, _volume.Switches, _volume.ReissuedRequests));
        Assert.Equal("the preferred node is now b", _volume.Describe().LastSwitch!.Reason);
    }

    [Fact]
    public async Task With_no_node_serving_a_request_fails_with_EIO_after_the_no_path_timeout()
    {
        await _a.StopAsync();
        await _b.StopAsync();
        var started = Stopwatch.StartNew();

        var error = await Assert.ThrowsAsync<BlockDeviceException>(async () => await _volume.ReadAsync(0, new byte[512]).AsTask().WaitAsync(Bound));

        Assert.Equal(StorageError.Io, error.Error);
        Assert.InRange(started.Elapsed, Options.NoPathTimeout - TimeSpan.FromMilliseconds(50), Bound);
        Assert.Null(_volume.ActiveNode);
    }

    private static byte[] Pattern(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(deadline.Elapsed < Bound, $"{what} within {Bound.TotalSeconds} s");
            await Task.Delay(10);
        }
    }
}

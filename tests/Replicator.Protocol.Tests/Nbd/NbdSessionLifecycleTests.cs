using Replicator.Protocol.Nbd;
using Replicator.Protocol.Tests.Nbd.Support;

namespace Replicator.Protocol.Tests.Nbd;

/// <summary>How a session ends: clients that vanish, server stops, and what happens to requests in flight.</summary>
public class NbdSessionLifecycleTests
{
    private const int Size = 1 << 20;

    [Fact]
    public async Task AClientThatVanishesMidWritePayloadEndsTheSessionWithoutWriting()
    {
        var device = new MemoryBlockDevice(Size);
        await using var harness = NbdSessionHarness.Serving(device);
        await harness.Client.StartAsync();
        var request = NbdBytes.Request(NbdWire.CmdWrite, 0, 4096, payload: NbdBytes.Pattern(4096, 1));

        await harness.Client.SendAsync(request[..1000]);
        await harness.Client.CloseAsync();

        Assert.Equal(NbdConnectionEndReason.TruncatedMessage, await harness.EndedAsync());
        Assert.Empty(device.Calls);
        NbdBytes.AssertZero(device.Snapshot());
    }

    [Fact]
    public async Task AClientThatVanishesMidHeaderEndsTheSessionAsTruncated()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size));
        await harness.Client.StartAsync();

        await harness.Client.SendAsync(NbdBytes.Request(NbdWire.CmdRead, 0, 512)[..20]);
        await harness.Client.CloseAsync();

        Assert.Equal(NbdConnectionEndReason.TruncatedMessage, await harness.EndedAsync());
    }

    [Fact]
    public async Task AClientThatVanishesWithRequestsInFlightLetsThemFinishFirst()
    {
        var device = new MemoryBlockDevice(Size);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        device.Gate = (_, _, _) => release.Task;
        await using var harness = NbdSessionHarness.Serving(device);
        await harness.Client.StartAsync();
        var data = NbdBytes.Pattern(512, 2);

        await harness.Client.SendRequestAsync(NbdWire.CmdWrite, 0, 512, payload: data);
        await harness.Client.CloseAsync();
        await Task.Delay(100);
        Assert.False(harness.Run.IsCompleted);
        release.SetResult();

        Assert.Equal(NbdConnectionEndReason.ClientClosed, await harness.EndedAsync());
        Assert.Equal(data, device.Snapshot()[..512]);
    }

    [Fact]
    public async Task AStopClosesAnIdleConnectionAtOnce()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size));
        await harness.Client.StartAsync();
        await harness.Client.AssertWorksAsync();

        harness.Session.BeginShutdown();

        Assert.Equal(NbdConnectionEndReason.ServerShutdown, await harness.EndedAsync());
        Assert.True(await harness.Client.ServerClosedAsync());
    }

    [Fact]
    public async Task AStopFinishesRequestsInFlightAndRefusesNewOnesWithEShutdown()
    {
        var device = new MemoryBlockDevice(Size);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        device.Gate = (operation, _, _) => operation == "write" ? release.Task : Task.CompletedTask;
        await using var harness = NbdSessionHarness.Serving(device);
        await harness.Client.StartAsync();
        var data = NbdBytes.Pattern(512, 3);
        await harness.Client.SendRequestAsync(NbdWire.CmdWrite, 0, 512, handle: 1, payload: data);
        await Eventually.WaitUntilAsync(() => device.Calls.Count == 1);

        harness.Session.BeginShutdown();
        var late = await harness.Client.RequestAsync(NbdWire.CmdWrite, 4096, 512, handle: 2, payload: data);
        release.SetResult();
        var first = await harness.Client.ReadReplyAsync();

        Assert.Equal(NbdWire.EShutdown, late.ErrorValue);
        Assert.Equal((1ul, 0u), (first.Handle, first.ErrorValue));
        Assert.True(await harness.Client.ServerClosedAsync());
        Assert.Equal(NbdConnectionEndReason.ServerShutdown, await harness.EndedAsync());
        Assert.Equal(data, device.Snapshot()[..512]);
        NbdBytes.AssertZero(device.Snapshot()[4096..4608]);
    }

    [Fact]
    public async Task AnAbortCancelsDeviceCallsAndEndsTheSession()
    {
        var device = new MemoryBlockDevice(Size);
        device.Gate = (_, _, cancellation) => Task.Delay(Timeout.Infinite, cancellation);
        await using var harness = NbdSessionHarness.Serving(device);
        await harness.Client.StartAsync();
        await harness.Client.SendRequestAsync(NbdWire.CmdRead, 0, 512);
        await Eventually.WaitUntilAsync(() => device.Calls.Count == 1);

        harness.Session.Abort();

        Assert.Equal(NbdConnectionEndReason.Aborted, await harness.EndedAsync());
    }

    [Fact]
    public async Task AnAbortUnblocksAReplyToAClientThatStoppedReading()
    {
        var device = new MemoryBlockDevice(4 << 20);
        await using var harness = NbdSessionHarness.Serving(device, pipeOptions: new System.IO.Pipelines.PipeOptions());
        await harness.Client.StartAsync();
        await harness.Client.SendRequestAsync(NbdWire.CmdRead, 0, 4 << 20);
        await Task.Delay(100);

        harness.Session.Abort();

        Assert.Equal(NbdConnectionEndReason.Aborted, await harness.EndedAsync());
    }

    [Fact]
    public async Task TheEndReasonIsLoggedOnce()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size));
        await harness.Client.StartAsync();

        await harness.Client.SendRequestAsync(NbdWire.CmdDisc);
        await harness.EndedAsync();

        var ended = Assert.Single(harness.Logger.Messages(2));
        Assert.Contains("ClientDisconnect", ended, StringComparison.Ordinal);
    }
}

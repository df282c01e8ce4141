using System.IO.Pipelines;
using Replicator.Protocol.Nbd;
using Replicator.Protocol.Tests.Nbd.Support;

namespace Replicator.Protocol.Tests.Nbd;

public class NbdTransmissionTests
{
    private const int Size = 1 << 20;
    private const int Unit = MemoryBlockDevice.AllocationUnit;
    private const uint HoleAndZero = NbdWire.StateHole | NbdWire.StateZero;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task WrittenDataReadsBack(bool structured)
    {
        var device = new MemoryBlockDevice(Size);
        await using var harness = NbdSessionHarness.Serving(device);
        await harness.Client.StartAsync(structured: structured);
        var data = NbdBytes.Pattern(3 * Unit, 1);

        var write = await harness.Client.RequestAsync(NbdWire.CmdWrite, Unit, (uint)data.Length, handle: 10, payload: data);
        var read = await harness.Client.RequestAsync(NbdWire.CmdRead, Unit, (uint)data.Length, handle: 11);

        Assert.Equal(0u, write.ErrorValue);
        Assert.False(write.Structured);
        Assert.Equal(structured, read.Structured);
        Assert.Equal(structured ? NbdWire.ReplyTypeOffsetData : (ushort)0, read.Type);
        if (structured)
        {
            Assert.Equal((ulong)Unit, read.DataOffset);
        }

        Assert.Equal(data, read.Data);
        Assert.Equal(data, device.Snapshot()[Unit..(4 * Unit)]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AReadOfZeroBytesSucceedsWithoutData(bool structured)
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size));
        await harness.Client.StartAsync(structured: structured);

        var read = await harness.Client.RequestAsync(NbdWire.CmdRead, 0, 0);

        Assert.Equal(0u, read.ErrorValue);
        Assert.Empty(read.Payload);
        Assert.Equal(structured ? NbdWire.ReplyTypeNone : (ushort)0, read.Type);
    }

    [Fact]
    public async Task ReadWithDontFragmentComesAsOneChunk()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size));
        await harness.Client.StartAsync(structured: true);

        var read = await harness.Client.RequestAsync(NbdWire.CmdRead, 0, 65536, NbdWire.CmdFlagDf);

        Assert.Equal(NbdWire.ReplyTypeOffsetData, read.Type);
        Assert.Equal(65536, read.Data.Length);
    }

    [Fact]
    public async Task FlushAndFuaReachTheDevice()
    {
        var device = new MemoryBlockDevice(Size);
        await using var harness = NbdSessionHarness.Serving(device);
        await harness.Client.StartAsync();

        await harness.Client.RequestAsync(NbdWire.CmdWrite, 0, 512, NbdWire.CmdFlagFua, payload: new byte[512]);
        await harness.Client.RequestAsync(NbdWire.CmdFlush);
        await harness.Client.RequestAsync(NbdWire.CmdTrim, 0, Unit, NbdWire.CmdFlagFua);

        Assert.Equal(["write+fua 0 512", "flush 0 0", $"trim+fua 0 {Unit}"], device.Calls);
    }

    [Fact]
    public async Task TrimLeavesZerosAndAHoleThatBlockStatusReports()
    {
        var device = new MemoryBlockDevice(Size);
        await using var harness = NbdSessionHarness.Serving(device);
        await harness.Client.StartAsync(structured: true, baseAllocation: true);
        await harness.Client.RequestAsync(NbdWire.CmdWrite, 0, 4 * Unit, payload: NbdBytes.Pattern(4 * Unit, 2));

        var trim = await harness.Client.RequestAsync(NbdWire.CmdTrim, Unit, 2 * Unit);
        var status = await harness.Client.RequestAsync(NbdWire.CmdBlockStatus, 0, 6 * Unit);
        var read = await harness.Client.RequestAsync(NbdWire.CmdRead, Unit, 2 * Unit);

        Assert.Equal(0u, trim.ErrorValue);
        Assert.Equal(NbdWire.ReplyTypeBlockStatus, status.Type);
        Assert.Equal(NbdWire.BaseAllocationContextId, status.ContextId);
        Assert.Equal([(Unit, 0u), (2 * Unit, HoleAndZero), (Unit, 0u), (2 * Unit, HoleAndZero)], status.Descriptors.Select(d => ((int)d.Length, d.Status)));
        NbdBytes.AssertZero(read.Data);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task WriteZeroesZeroesAndKeepsTheSpaceOnlyWithNoHole(bool noHole)
    {
        var device = new MemoryBlockDevice(Size);
        await using var harness = NbdSessionHarness.Serving(device);
        await harness.Client.StartAsync(structured: true, baseAllocation: true);
        await harness.Client.RequestAsync(NbdWire.CmdWrite, 0, 2 * Unit, payload: NbdBytes.Pattern(2 * Unit, 3));

        var zero = await harness.Client.RequestAsync(NbdWire.CmdWriteZeroes, 0, 2 * Unit, noHole ? NbdWire.CmdFlagNoHole : (ushort)0);
        var status = await harness.Client.RequestAsync(NbdWire.CmdBlockStatus, 0, 2 * Unit);

        Assert.Equal(0u, zero.ErrorValue);
        NbdBytes.AssertZero(device.Snapshot()[..(2 * Unit)]);
        Assert.Equal([(2u * Unit, noHole ? 0u : HoleAndZero)], status.Descriptors);
    }

    [Fact]
    public async Task BlockStatusWithReqOneSendsOneDescriptorWithinTheRequest()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size));
        await harness.Client.StartAsync(structured: true, baseAllocation: true);
        await harness.Client.RequestAsync(NbdWire.CmdWrite, 0, Unit, payload: new byte[Unit]);

        var first = await harness.Client.RequestAsync(NbdWire.CmdBlockStatus, 0, 4 * Unit, NbdWire.CmdFlagReqOne);
        var clipped = await harness.Client.RequestAsync(NbdWire.CmdBlockStatus, Unit, 1000, NbdWire.CmdFlagReqOne);

        Assert.Equal([((uint)Unit, 0u)], first.Descriptors);
        Assert.Equal([(1000u, HoleAndZero)], clipped.Descriptors);
    }

    [Fact]
    public async Task CacheIsPassedToTheDevice()
    {
        var device = new MemoryBlockDevice(Size);
        await using var harness = NbdSessionHarness.Serving(device);
        await harness.Client.StartAsync();

        var cache = await harness.Client.RequestAsync(NbdWire.CmdCache, Unit, Unit);

        Assert.Equal(0u, cache.ErrorValue);
        Assert.Equal([$"cache {Unit} {Unit}"], device.Calls);
    }

    [Fact]
    public async Task RequestsArrivingOneBytePerWriteAreUnderstood()
    {
        var device = new MemoryBlockDevice(Size);
        await using var harness = NbdSessionHarness.Serving(device);
        await harness.Client.StartAsync();
        var data = NbdBytes.Pattern(1000, 4);

        await harness.Client.SendBytePerFlushAsync(NbdBytes.Request(NbdWire.CmdWrite, 7, 1000, handle: 1, payload: data));
        var write = await harness.Client.ReadReplyAsync();

        Assert.Equal(0u, write.ErrorValue);
        Assert.Equal(data, device.Snapshot()[7..1007]);
    }

    [Fact]
    public async Task AMaximumSizeWriteAndReadRoundTripOverDefaultPipes()
    {
        var device = new MemoryBlockDevice((int)NbdWire.MaximumBlockSize);
        await using var harness = NbdSessionHarness.Serving(device, pipeOptions: new PipeOptions());
        await harness.Client.StartAsync(structured: true);
        var data = NbdBytes.Pattern((int)NbdWire.MaximumBlockSize, 5);

        var sending = harness.Client.SendRequestAsync(NbdWire.CmdWrite, 0, (uint)data.Length, handle: 1, payload: data);
        var write = await harness.Client.ReadReplyAsync();
        await sending;
        var read = await harness.Client.RequestAsync(NbdWire.CmdRead, 0, (uint)data.Length, handle: 2);

        Assert.Equal(0u, write.ErrorValue);
        Assert.True(data.AsSpan().SequenceEqual(read.Data));
    }

    [Fact]
    public async Task RepliesLeaveInCompletionOrder()
    {
        var device = new MemoryBlockDevice(Size);
        var releaseFirst = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        device.Gate = (operation, offset, _) => operation == "read" && offset == 0 ? releaseFirst.Task : Task.CompletedTask;
        await using var harness = NbdSessionHarness.Serving(device);
        await harness.Client.StartAsync(structured: true);

        await harness.Client.SendRequestAsync(NbdWire.CmdRead, 0, 512, handle: 1);
        await harness.Client.SendRequestAsync(NbdWire.CmdWrite, Unit, 512, handle: 2, payload: new byte[512]);
        await harness.Client.SendRequestAsync(NbdWire.CmdRead, Unit, 512, handle: 3);
        var early = new[] { await harness.Client.ReadReplyAsync(), await harness.Client.ReadReplyAsync() };
        releaseFirst.SetResult();
        var late = await harness.Client.ReadReplyAsync();

        Assert.Equal([2ul, 3ul], early.Select(r => r.Handle));
        Assert.Equal(1ul, late.Handle);
        Assert.Equal(512, late.Data.Length);
    }

    [Fact]
    public async Task ManyRequestsInFlightAreAllAnsweredWithinTheLimit()
    {
        var device = new MemoryBlockDevice(Size);
        device.Gate = async (_, _, _) => await Task.Yield();
        var options = new NbdServerOptions { MaxInFlightRequests = 8, MaxInFlightBytes = 8 * Unit };
        await using var harness = NbdSessionHarness.Serving(device, options);
        await harness.Client.StartAsync();
        var requests = Enumerable.Range(0, 200).Select(i => NbdBytes.Request(
            NbdWire.CmdWrite, (ulong)(i % 256 * Unit), Unit, handle: (ulong)i, payload: NbdBytes.Pattern(Unit, i))).ToArray();

        var sending = Task.Run(async () =>
        {
            foreach (var request in requests)
            {
                await harness.Client.SendAsync(request);
            }
        });
        var handles = new List<ulong>();
        for (var i = 0; i < requests.Length; i++)
        {
            var reply = await harness.Client.ReadReplyAsync();
            Assert.Equal(0u, reply.ErrorValue);
            handles.Add(reply.Handle);
        }

        await sending.WaitAsync(NbdTestClient.Timeout);
        Assert.Equal(Enumerable.Range(0, 200).Select(i => (ulong)i), handles.Order());
        Assert.InRange(device.MaxConcurrentCalls, 1, 8);
    }

    [Fact]
    public async Task AFullConnectionStopsReadingUntilARequestFinishes()
    {
        var device = new MemoryBlockDevice(Size);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        device.Gate = (_, _, _) => release.Task;
        await using var harness = NbdSessionHarness.Serving(device, new NbdServerOptions { MaxInFlightRequests = 2 });
        await harness.Client.StartAsync();

        for (var i = 0; i < 5; i++)
        {
            await harness.Client.SendRequestAsync(NbdWire.CmdRead, 0, 512, handle: (ulong)i);
        }

        await Eventually.WaitUntilAsync(() => device.Calls.Count == 2);
        await Task.Delay(200);
        Assert.Equal(2, device.Calls.Count);
        release.SetResult();
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(0u, (await harness.Client.ReadReplyAsync()).ErrorValue);
        }

        Assert.Equal(5, device.Calls.Count);
    }

    [Fact]
    public async Task DisconnectFinishesTheRequestsInFlightThenCloses()
    {
        var device = new MemoryBlockDevice(Size);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        device.Gate = (operation, _, _) => operation == "write" ? release.Task : Task.CompletedTask;
        await using var harness = NbdSessionHarness.Serving(device);
        await harness.Client.StartAsync();
        var data = NbdBytes.Pattern(512, 6);

        await harness.Client.SendRequestAsync(NbdWire.CmdWrite, 0, 512, handle: 1, payload: data);
        await harness.Client.SendRequestAsync(NbdWire.CmdDisc, handle: 2);
        await Task.Delay(100);
        Assert.False(harness.Run.IsCompleted);
        release.SetResult();

        var reply = await harness.Client.ReadReplyAsync();
        Assert.Equal((1ul, 0u), (reply.Handle, reply.ErrorValue));
        Assert.True(await harness.Client.ServerClosedAsync());
        Assert.Equal(NbdConnectionEndReason.ClientDisconnect, await harness.EndedAsync());
        Assert.Equal(data, device.Snapshot()[..512]);
    }

    [Fact]
    public async Task AClientThatDoesNotReadItsRepliesIsPushedBack()
    {
        var device = new MemoryBlockDevice(Size);
        await using var harness = NbdSessionHarness.Serving(
            device, new NbdServerOptions { MaxInFlightRequests = 4 }, new PipeOptions());
        await harness.Client.StartAsync();
        var bad = NbdBytes.Request(NbdWire.CmdRead, Size, 512);
        const int count = 20_000;

        var sending = Task.Run(async () =>
        {
            for (var i = 0; i < count; i++)
            {
                await harness.Client.SendAsync(bad);
            }
        });
        await Task.Delay(500);
        Assert.False(sending.IsCompleted, "the server kept reading although nobody read its replies");

        for (var i = 0; i < count; i++)
        {
            Assert.Equal(NbdWire.EInval, (await harness.Client.ReadReplyAsync()).ErrorValue);
        }

        await sending.WaitAsync(NbdTestClient.Timeout);
        await harness.Client.AssertWorksAsync();
    }
}

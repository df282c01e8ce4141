using Replicator.Core.Devices;
using Replicator.Protocol.Nbd;
using Replicator.Protocol.Nbd.Client;
using Replicator.Protocol.Tests.Nbd.Support;

namespace Replicator.Protocol.Tests.Nbd.Client;

/// <summary>The client against a scripted server: reply shapes and failures a well-behaved server rarely produces on cue.</summary>
public sealed class NbdClientRepliesTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly ScriptedNbdServer _server = new();
    private readonly TestLogger _logger = new();
    private NbdClient? _client;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        _client?.Abort("test over");
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task SimpleRepliesAreUnderstoodWhenTheServerRefusesStructuredReplies()
    {
        var client = await ConnectAsync(structured: false);
        Assert.False(client.Export.StructuredReplies);
        Assert.Null(client.Export.BaseAllocationContextId);
        Assert.False(client.Features.HasFlag(DeviceFeatures.BlockStatus));

        var buffer = new byte[8];
        var read = client.ReadAsync(512, buffer).AsTask();
        var (request, _) = await _server.ReadRequestAsync();
        Assert.Equal((NbdWire.CmdRead, 512ul, 8u), (request.Type, request.Offset, request.Length));
        await _server.SendBytePerFlushAsync(NbdReplyBytes.Simple(request.Handle, data: [1, 2, 3, 4, 5, 6, 7, 8]));
        await read.WaitAsync(Timeout);
        Assert.Equal([1, 2, 3, 4, 5, 6, 7, 8], buffer);

        var write = client.WriteAsync(0, new byte[] { 9, 9 }, IoFlags.None).AsTask();
        var (writeRequest, payload) = await _server.ReadRequestAsync();
        Assert.Equal([9, 9], payload);
        await _server.SendAsync(NbdReplyBytes.Simple(writeRequest.Handle, NbdWire.EPerm));
        var refused = await Assert.ThrowsAsync<BlockDeviceException>(() => write.WaitAsync(Timeout));
        Assert.Equal(StorageError.NotPermitted, refused.Error);

        await Assert.ThrowsAsync<BlockDeviceException>(async () => await client.GetAllocationAsync(0, 4096));
    }

    [Fact]
    public async Task ReadChunksInAnyOrderFillTheBufferAndHolesReadAsZeros()
    {
        var client = await ConnectAsync(structured: true);
        var buffer = Enumerable.Repeat((byte)0xff, 12288).ToArray();
        var read = client.ReadAsync(1 << 16, buffer).AsTask();
        var (request, _) = await _server.ReadRequestAsync();
        var first = NbdBytes.Pattern(4096, 1);
        var last = NbdBytes.Pattern(4096, 2);

        await _server.SendBytePerFlushAsync(NbdReplyBytes.OffsetData(request.Handle, (1 << 16) + 8192, last, done: false));
        await _server.SendAsync(
            NbdReplyBytes.OffsetHole(request.Handle, (1 << 16) + 4096, 4096, done: false),
            NbdReplyBytes.OffsetData(request.Handle, 1 << 16, first, done: false),
            NbdReplyBytes.None(request.Handle));
        await read.WaitAsync(Timeout);

        Assert.Equal(first, buffer[..4096]);
        NbdBytes.AssertZero(buffer[4096..8192]);
        Assert.Equal(last, buffer[8192..]);
    }

    [Fact]
    public async Task AnErrorChunkFailsTheRequestWithTheServersMessageOnceTheLastChunkArrives()
    {
        var client = await ConnectAsync(structured: true);
        var read = client.ReadAsync(0, new byte[4096]).AsTask();
        var (request, _) = await _server.ReadRequestAsync();
        await _server.SendAsync(NbdReplyBytes.Error(request.Handle, NbdWire.EIo, "bad sector", done: false, offset: 512));
        await Task.Delay(50);
        Assert.False(read.IsCompleted);

        await _server.SendAsync(NbdReplyBytes.None(request.Handle));
        var failure = await Assert.ThrowsAsync<BlockDeviceException>(() => read.WaitAsync(Timeout));
        Assert.Equal(StorageError.Io, failure.Error);
        Assert.Contains("EIO: bad sector", failure.Message, StringComparison.Ordinal);
        Assert.True(client.IsOpen);
    }

    [Fact]
    public async Task RepliesInAnyOrderCompleteTheirOwnRequests()
    {
        var client = await ConnectAsync(structured: true);
        var buffers = Enumerable.Range(0, 3).Select(_ => new byte[1]).ToArray();
        var reads = buffers.Select((b, i) => client.ReadAsync(i, b).AsTask()).ToArray();
        var requests = new List<NbdRequest>();
        for (var i = 0; i < 3; i++)
        {
            requests.Add((await _server.ReadRequestAsync()).Request);
        }

        foreach (var request in requests.AsEnumerable().Reverse())
        {
            await _server.SendAsync(NbdReplyBytes.OffsetData(request.Handle, request.Offset, [(byte)(10 + request.Offset)]));
        }

        await Task.WhenAll(reads).WaitAsync(Timeout);
        Assert.Equal([10, 11, 12], buffers.Select(b => b[0]));
        Assert.Equal(3, requests.Select(r => r.Handle).Distinct().Count());
    }

    [Fact]
    public async Task WhenTheServerGoesAwayEveryRequestInFlightFailsWithConnectionLost()
    {
        var client = await ConnectAsync(structured: true);
        var inFlight = new List<Task>
        {
            client.ReadAsync(0, new byte[512]).AsTask(),
            client.WriteAsync(4096, new byte[512], IoFlags.Fua).AsTask(),
            client.FlushAsync().AsTask(),
        };
        for (var i = 0; i < inFlight.Count; i++)
        {
            await _server.ReadRequestAsync();
        }

        Assert.Equal(3, client.InFlightCount);
        Assert.NotNull(client.OldestInFlightStarted());
        await _server.CloseAsync();

        foreach (var request in inFlight)
        {
            var lost = await Assert.ThrowsAsync<NbdConnectionLostException>(() => request.WaitAsync(Timeout));
            Assert.Equal(NbdClientEndReason.ServerClosed, lost.Reason);
        }

        Assert.Equal(NbdClientEndReason.ServerClosed, (await client.Closed.WaitAsync(Timeout)).Reason);
        Assert.False(client.IsOpen);
        Assert.Equal(0, client.InFlightCount);
        Assert.Null(client.OldestInFlightStarted());
        await Assert.ThrowsAsync<NbdConnectionLostException>(async () => await client.FlushAsync());
    }

    [Fact]
    public async Task AReplyToACookieNotInFlightIsAProtocolErrorThatEndsTheConnection()
    {
        var client = await ConnectAsync(structured: true);
        var read = client.ReadAsync(0, new byte[512]).AsTask();
        await _server.ReadRequestAsync();
        await _server.SendAsync(NbdReplyBytes.None(0xdead));

        var lost = await Assert.ThrowsAsync<NbdConnectionLostException>(() => read.WaitAsync(Timeout));
        Assert.Equal(NbdClientEndReason.ProtocolError, lost.Reason);
        Assert.Contains("0x000000000000dead", lost.Message, StringComparison.Ordinal);
        Assert.True(await _server.ClientClosedAsync());
    }

    [Fact]
    public async Task AReadReplyThatLeavesPartOfTheRangeUncoveredIsAProtocolError()
    {
        var client = await ConnectAsync(structured: true);
        var read = client.ReadAsync(0, new byte[1024]).AsTask();
        var (request, _) = await _server.ReadRequestAsync();
        await _server.SendAsync(NbdReplyBytes.OffsetData(request.Handle, 0, new byte[512]));

        var lost = await Assert.ThrowsAsync<NbdConnectionLostException>(() => read.WaitAsync(Timeout));
        Assert.Equal(NbdClientEndReason.ProtocolError, lost.Reason);
    }

    [Fact]
    public async Task AbortFailsRequestsInFlightAtOnceAndClosesTheConnection()
    {
        var client = await ConnectAsync(structured: true);
        var write = client.WriteAsync(0, new byte[4096], IoFlags.None).AsTask();
        await _server.ReadRequestAsync();

        client.Abort("the node did not answer within 2 s");

        var lost = await Assert.ThrowsAsync<NbdConnectionLostException>(() => write.WaitAsync(Timeout));
        Assert.Equal(NbdClientEndReason.Aborted, lost.Reason);
        Assert.Contains("did not answer within 2 s", lost.Message, StringComparison.Ordinal);
        Assert.True(await _server.ClientClosedAsync());
    }

    [Fact]
    public async Task RequestsBeyondTheSlotsWaitUntilOneIsFree()
    {
        var client = await ConnectAsync(structured: true, new NbdClientOptions { MaxInFlightRequests = 2 });
        var flushes = Enumerable.Range(0, 3).Select(_ => client.FlushAsync().AsTask()).ToArray();
        var first = (await _server.ReadRequestAsync()).Request;
        await _server.ReadRequestAsync();
        Assert.Equal(2, client.InFlightCount);

        await _server.SendAsync(NbdReplyBytes.Simple(first.Handle));
        var third = (await _server.ReadRequestAsync()).Request;
        Assert.Equal(NbdWire.CmdFlush, third.Type);
        Assert.Equal((uint)first.Handle, (uint)third.Handle);
        Assert.NotEqual(first.Handle, third.Handle);
        await flushes[0].WaitAsync(Timeout);
    }

    private async Task<NbdClient> ConnectAsync(bool structured, NbdClientOptions? options = null)
    {
        var connect = NbdClient.ConnectAsync(_server.ClientSide, "vol0", _logger, options, "scripted");
        await _server.HandshakeAsync(structured);
        _client = await connect.WaitAsync(Timeout);
        return _client;
    }
}

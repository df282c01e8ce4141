using System.IO.Pipelines;
using System.Net.Sockets;
using Replicator.Core.Devices;
using Replicator.Protocol.Nbd;
using Replicator.Protocol.Nbd.Client;
using Replicator.Protocol.Tests.Nbd.Support;

namespace Replicator.Protocol.Tests.Nbd.Client;

/// <summary>The client against this project's own NBD server, over in-memory pipes and a Unix socket.</summary>
public sealed class NbdClientTests : IAsyncDisposable
{
    private const int Size = 4 << 20;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private readonly MemoryBlockDevice _device = new(Size);
    private readonly TestExportCatalog _catalog;
    private readonly TestLogger _logger = new();
    private readonly List<(NbdServerSession Session, Task<NbdConnectionEndReason> Run)> _sessions = [];
    private readonly List<NbdClient> _clients = [];

    public NbdClientTests() => _catalog = new TestExportCatalog().Add("vol0", _device, "the first volume");

    public async ValueTask DisposeAsync()
    {
        _clients.ForEach(c => c.Abort("test over"));
        foreach (var (session, run) in _sessions)
        {
            session.Abort();
            await run.WaitAsync(Timeout);
        }
    }

    [Fact]
    public async Task TheHandshakeAgreesOnStructuredRepliesBaseAllocationAndBlockSizes()
    {
        var client = await ConnectAsync();

        Assert.Equal(Size, client.Size);
        Assert.True(client.Export.StructuredReplies);
        Assert.Equal(NbdWire.BaseAllocationContextId, client.Export.BaseAllocationContextId);
        Assert.Equal((NbdWire.MinimumBlockSize, NbdWire.PreferredBlockSize, NbdWire.MaximumBlockSize),
            (client.Export.MinimumBlockSize, client.Export.PreferredBlockSize, client.Export.MaximumBlockSize));
        Assert.Equal(DeviceFeatures.AllWritable, client.Features);
    }

    [Fact]
    public async Task AClientThatDoesNotAskForBlockSizesMayWriteUnalignedBytes()
    {
        var aligned = await ConnectAsync();
        var refused = await Assert.ThrowsAsync<BlockDeviceException>(async () => await aligned.WriteAsync(1, new byte[] { 7, 8, 9 }, IoFlags.None));
        Assert.Equal(StorageError.InvalidArgument, refused.Error);

        var proxy = await ConnectAsync(new NbdClientOptions { RequestBlockSizes = false });
        await proxy.WriteAsync(1, new byte[] { 7, 8, 9 }, IoFlags.None);
        Assert.Equal([0, 7, 8, 9, 0], _device.Snapshot()[..5]);
        Assert.Equal(NbdWire.MinimumBlockSize, proxy.Export.MinimumBlockSize);
    }

    [Fact]
    public async Task ManyConcurrentWritesAndReadsOfMixedSizesRoundTrip()
    {
        var client = await ConnectAsync(new NbdClientOptions { MaxInFlightRequests = 8 });
        var blocks = Enumerable.Range(0, 64).Select(i => (Offset: i * 65536L, Data: NbdBytes.Pattern(512 * (1 + (i % 100)), i))).ToArray();

        await Task.WhenAll(blocks.Select(b => client.WriteAsync(b.Offset, b.Data, IoFlags.None).AsTask())).WaitAsync(Timeout);
        var buffers = blocks.Select(b => new byte[b.Data.Length]).ToArray();
        await Task.WhenAll(blocks.Select((b, i) => client.ReadAsync(b.Offset, buffers[i]).AsTask())).WaitAsync(Timeout);

        var snapshot = _device.Snapshot();
        for (var i = 0; i < blocks.Length; i++)
        {
            Assert.Equal(blocks[i].Data, buffers[i]);
            Assert.Equal(blocks[i].Data, snapshot.AsSpan((int)blocks[i].Offset, blocks[i].Data.Length).ToArray());
        }

        Assert.Equal(0, client.InFlightCount);
    }

    [Fact]
    public async Task AReadOfTheLargestSizeArrivesWhole()
    {
        var client = await ConnectAsync();
        var data = NbdBytes.Pattern(Size, 7);
        await client.WriteAsync(0, data, IoFlags.None);
        var buffer = new byte[Size];
        await client.ReadAsync(0, buffer);
        Assert.Equal(data, buffer);
    }

    [Fact]
    public async Task TrimWriteZeroesAndBlockStatusShapeTheAllocation()
    {
        var client = await ConnectAsync();
        await client.WriteAsync(0, NbdBytes.Pattern(16384, 1), IoFlags.None);
        await client.TrimAsync(4096, 4096, IoFlags.None);
        await client.WriteZeroesAsync(8192, 4096, IoFlags.NoHole);

        var extents = await client.GetAllocationAsync(0, 20480);

        Assert.Equal(
            [
                new(4096, AllocationState.Data),
                new(4096, AllocationState.Hole | AllocationState.Zero),
                new(8192, AllocationState.Data),
                new(4096, AllocationState.Hole | AllocationState.Zero),
            ],
            extents);
        NbdBytes.AssertZero(_device.Snapshot()[4096..12288]);
    }

    [Fact]
    public async Task FlushCacheAndFuaReachTheDevice()
    {
        var client = await ConnectAsync();
        await client.WriteAsync(0, new byte[512], IoFlags.Fua);
        await client.FlushAsync();
        await client.CacheAsync(0, 65536);
        await client.TrimAsync(0, 512, IoFlags.Fua | IoFlags.NoHole);

        Assert.Equal(["write+fua 0 512", "flush 0 0", "cache 0 65536", "trim+fua 0 512"], _device.Calls);
    }

    [Fact]
    public async Task DeviceFailuresAndBadRequestsComeBackAsStorageErrorsAndTheConnectionStaysUsable()
    {
        var client = await ConnectAsync();
        _device.Fault = (operation, offset) => offset == 8192
            ? new BlockDeviceException(operation.StartsWith("write", StringComparison.Ordinal) ? StorageError.NotPermitted : StorageError.Io, "replica said no")
            : null;

        var io = await Assert.ThrowsAsync<BlockDeviceException>(async () => await client.ReadAsync(8192, new byte[512]));
        var perm = await Assert.ThrowsAsync<BlockDeviceException>(async () => await client.WriteAsync(8192, new byte[512], IoFlags.None));
        var pastEndRead = await Assert.ThrowsAsync<BlockDeviceException>(async () => await client.ReadAsync(Size, new byte[512]));
        var pastEndWrite = await Assert.ThrowsAsync<BlockDeviceException>(async () => await client.WriteAsync(Size, new byte[512], IoFlags.None));

        Assert.Equal(StorageError.Io, io.Error);
        Assert.Contains("EIO: replica said no", io.Message, StringComparison.Ordinal);
        Assert.Equal(StorageError.NotPermitted, perm.Error);
        Assert.Equal(StorageError.InvalidArgument, pastEndRead.Error);
        Assert.Equal(StorageError.NoSpace, pastEndWrite.Error);

        await client.WriteAsync(0, new byte[512], IoFlags.None);
        Assert.True(client.IsOpen);
    }

    [Fact]
    public async Task DisconnectLetsTheRequestsInFlightFinishThenClosesCleanly()
    {
        var client = await ConnectAsync();
        var release = new TaskCompletionSource();
        _device.Gate = (_, _, ct) => release.Task.WaitAsync(ct);
        var write = client.WriteAsync(0, Enumerable.Repeat((byte)42, 512).ToArray(), IoFlags.None).AsTask();
        await Eventually.WaitUntilAsync(() => _device.Calls.Count == 1);

        var disconnect = client.DisconnectAsync();
        await Assert.ThrowsAsync<NbdConnectionLostException>(async () => await client.FlushAsync());
        release.SetResult();
        await write.WaitAsync(Timeout);
        await disconnect.WaitAsync(Timeout);

        Assert.Equal(NbdClientEndReason.Disconnected, (await client.Closed).Reason);
        Assert.Equal(NbdConnectionEndReason.ClientDisconnect, await _sessions[0].Run.WaitAsync(Timeout));
        Assert.Equal(42, _device.Snapshot()[0]);
    }

    [Fact]
    public async Task AnUnknownExportFailsTheHandshakeWithTheServersReply()
    {
        var failure = await Assert.ThrowsAsync<NbdHandshakeException>(() => ConnectAsync(export: "nope"));
        Assert.Equal(NbdWire.RepErrUnknown, failure.Reply);
        Assert.Contains("nope", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OverAUnixSocketNamedByAnNbdUri()
    {
        var directory = Directory.CreateTempSubdirectory("nbd-client-").FullName;
        try
        {
            var path = Path.Combine(directory, "nbd.sock");
            await using var server = new NbdServer(_catalog, _logger);
            server.Start([new UnixDomainSocketEndPoint(path)]);

            var client = await NbdClient.ConnectAsync(NbdUri.Parse($"nbd+unix:///vol0?socket={path}"), _logger);
            _clients.Add(client);
            await client.WriteAsync(4096, NbdBytes.Pattern(4096, 3), IoFlags.Fua);
            var buffer = new byte[4096];
            await client.ReadAsync(4096, buffer);
            Assert.Equal(NbdBytes.Pattern(4096, 3), buffer);

            await client.DisconnectAsync();
            Assert.Equal(NbdClientEndReason.Disconnected, (await client.Closed).Reason);
            await Eventually.WaitUntilAsync(() => server.ConnectionCount == 0);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>
    /// The gateway aborts a node's connections when one of them fails; when the node was killed, its other
    /// connection finds the socket closed at the same moment and completes its pipes. The abort must then end
    /// quietly: an exception there, on a thread-pool thread, killed the gateway.
    /// </summary>
    [Fact]
    public async Task AnAbortOvertakenByTheServerClosingTheSocketEndsQuietly()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        listener.Listen();
        using var clientSocket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await clientSocket.ConnectAsync(listener.LocalEndPoint!);
        using var serverSocket = await listener.AcceptAsync();

        var serverStream = new NetworkStream(serverSocket);
        var session = new NbdServerSession(new DuplexPipe(PipeReader.Create(serverStream), PipeWriter.Create(serverStream)),
            _catalog, NbdServerOptions.Default, _logger, "server");
        _sessions.Add((session, Task.Run(session.RunAsync)));

        var clientStream = new NetworkStream(clientSocket);
        var held = new HeldCancelPipe(new DuplexPipe(PipeReader.Create(clientStream), PipeWriter.Create(clientStream)));
        var client = await NbdClient.ConnectAsync(held, "vol0", _logger, transportOwner: clientStream).WaitAsync(Timeout);
        await client.WriteAsync(0, NbdBytes.Pattern(4096, 5), IoFlags.None).AsTask().WaitAsync(Timeout);

        var abort = Task.Run(() => client.Abort("the other connection to this node failed"));
        await held.Held.WaitAsync(Timeout);
        serverSocket.Shutdown(SocketShutdown.Both);
        var closed = await client.Closed.WaitAsync(Timeout);
        held.Release();

        await abort.WaitAsync(Timeout);
        Assert.Equal(NbdClientEndReason.Aborted, closed.Reason);
        Assert.False(client.IsOpen);
    }

    [Fact]
    public async Task ConnectingWhereNothingListensFailsWithASocketError()
    {
        var uri = NbdUri.Parse($"nbd+unix:///vol0?socket={Path.Combine(Path.GetTempPath(), Guid.NewGuid().ToString("N"))}");
        await Assert.ThrowsAnyAsync<SocketException>(() => NbdClient.ConnectAsync(uri, _logger));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RequestsStartedInsideASendBatchLeaveInOneSendWhenItEnds(bool batched)
    {
        var output = new CountingPipeWriter[1];
        var client = await ConnectAsync(wrapOutput: writer => output[0] = new CountingPipeWriter(writer));
        var blocks = Enumerable.Range(0, 8).Select(i => (Offset: i * 4096L, Data: NbdBytes.Pattern(4096, 80 + i))).ToArray();
        var before = output[0].Flushes;

        var writes = new List<Task>();
        if (batched)
        {
            SendBatch.Enter();
        }

        try
        {
            writes.AddRange(blocks.Select(b => client.WriteAsync(b.Offset, b.Data, IoFlags.None).AsTask()));
            Assert.Equal(batched ? 0 : blocks.Length, output[0].Flushes - before);
        }
        finally
        {
            if (batched)
            {
                SendBatch.Exit();
            }
        }

        Assert.Equal(batched ? 1 : blocks.Length, output[0].Flushes - before);
        await Task.WhenAll(writes).WaitAsync(Timeout);
        var snapshot = _device.Snapshot();
        Assert.All(blocks, b => Assert.Equal(b.Data, snapshot.AsSpan((int)b.Offset, 4096).ToArray()));
    }

    private async Task<NbdClient> ConnectAsync(NbdClientOptions? options = null, string export = "vol0", Func<PipeWriter, PipeWriter>? wrapOutput = null)
    {
        var toServer = new Pipe(NbdSessionHarness.DeepPipes);
        var toClient = new Pipe(NbdSessionHarness.DeepPipes);
        var session = new NbdServerSession(new DuplexPipe(toServer.Reader, toClient.Writer), _catalog, NbdServerOptions.Default, _logger, "server");
        _sessions.Add((session, Task.Run(session.RunAsync)));
        var output = wrapOutput?.Invoke(toServer.Writer) ?? toServer.Writer;
        var client = await NbdClient.ConnectAsync(new DuplexPipe(toClient.Reader, output), export, _logger, options, "test").WaitAsync(Timeout);
        _clients.Add(client);
        return client;
    }
}

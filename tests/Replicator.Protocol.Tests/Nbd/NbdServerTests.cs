using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Replicator.Protocol.Nbd;
using Replicator.Protocol.Tests.Nbd.Support;

namespace Replicator.Protocol.Tests.Nbd;

public sealed class NbdServerTests : IDisposable
{
    private const int Size = 1 << 20;

    private readonly string _directory = Directory.CreateTempSubdirectory("nbd-server-").FullName;
    private readonly TestLogger _logger = new();

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task AClientOverAUnixSocketWritesReadsAndDisconnects()
    {
        var device = new MemoryBlockDevice(Size);
        var catalog = new TestExportCatalog().Add("vol0", device);
        var path = Path.Combine(_directory, "nbd.sock");
        await using var server = new NbdServer(catalog, _logger);
        server.Start([new UnixDomainSocketEndPoint(path)]);

        using var socket = await ConnectAsync(new UnixDomainSocketEndPoint(path));
        var client = ClientOver(socket);
        await client.StartAsync(structured: true, baseAllocation: true);
        await client.AssertWorksAsync(8192);
        var status = await client.RequestAsync(NbdWire.CmdBlockStatus, 0, 3 * 4096);
        await client.SendRequestAsync(NbdWire.CmdDisc);

        Assert.Equal([(8192u, NbdWire.StateHole | NbdWire.StateZero), (4096u, 0u)], status.Descriptors);
        Assert.True(await client.ServerClosedAsync());
        await Eventually.WaitUntilAsync(() => server.ConnectionCount == 0);
        Assert.Equal(0, catalog.OpenAttachments);
        Assert.Equal(new UnixDomainSocketEndPoint(path).ToString(), Assert.Single(server.EndPoints).ToString());
    }

    [Fact]
    public async Task AStaleSocketFileIsReplacedAndRemovedOnStop()
    {
        var path = Path.Combine(_directory, "stale.sock");
        using (var stale = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            // A server killed with -9 leaves its socket file behind; .NET removes the file on Dispose,
            // so the file is moved away from under the socket first.
            var bound = Path.Combine(_directory, "bound.sock");
            stale.Bind(new UnixDomainSocketEndPoint(bound));
            File.Move(bound, path);
        }

        Assert.True(File.Exists(path));
        var server = new NbdServer(new TestExportCatalog(), _logger);
        server.Start([new UnixDomainSocketEndPoint(path)]);
        using (var socket = await ConnectAsync(new UnixDomainSocketEndPoint(path)))
        {
            Assert.True(socket.Connected);
        }

        await server.StopAsync().WaitAsync(NbdTestClient.Timeout);

        Assert.False(File.Exists(path));
        Assert.Single(_logger.Messages(31));
    }

    [Fact]
    public async Task ASocketFileInUseByAnotherServerIsNotTaken()
    {
        var path = Path.Combine(_directory, "busy.sock");
        await using var first = new NbdServer(new TestExportCatalog(), _logger);
        first.Start([new UnixDomainSocketEndPoint(path)]);
        await using var second = new NbdServer(new TestExportCatalog(), _logger);

        Assert.Throws<IOException>(() => second.Start([new UnixDomainSocketEndPoint(path)]));
        Assert.True(File.Exists(path));
    }

    [Fact]
    public async Task TcpOnPortZeroReportsTheRealPortAndServes()
    {
        var catalog = new TestExportCatalog().Add("vol0", new MemoryBlockDevice(Size));
        await using var server = new NbdServer(catalog, _logger);
        server.Start([new IPEndPoint(IPAddress.Loopback, 0)]);

        var endPoint = Assert.IsType<IPEndPoint>(Assert.Single(server.EndPoints));
        Assert.NotEqual(0, endPoint.Port);
        using var socket = await ConnectAsync(endPoint);
        var client = ClientOver(socket);
        await client.StartAsync();
        await client.AssertWorksAsync();
    }

    [Fact]
    public async Task StopLetsARequestInFlightFinishThenClosesTheConnection()
    {
        var device = new MemoryBlockDevice(Size);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        device.Gate = (operation, _, _) => operation == "write" ? release.Task : Task.CompletedTask;
        var catalog = new TestExportCatalog().Add("vol0", device);
        var path = Path.Combine(_directory, "stop.sock");
        var server = new NbdServer(catalog, _logger);
        server.Start([new UnixDomainSocketEndPoint(path)]);
        using var socket = await ConnectAsync(new UnixDomainSocketEndPoint(path));
        var client = ClientOver(socket);
        await client.StartAsync();
        var data = NbdBytes.Pattern(512, 4);
        await client.SendRequestAsync(NbdWire.CmdWrite, 0, 512, payload: data);
        await Eventually.WaitUntilAsync(() => device.Calls.Count == 1);

        var stopping = server.StopAsync();
        await Task.Delay(100);
        Assert.False(stopping.IsCompleted);
        release.SetResult();
        var reply = await client.ReadReplyAsync();
        await stopping.WaitAsync(NbdTestClient.Timeout);

        Assert.Equal(0u, reply.ErrorValue);
        Assert.True(await client.ServerClosedAsync());
        Assert.Equal(data, device.Snapshot()[..512]);
        Assert.Equal(0, server.ConnectionCount);
        Assert.Equal(0, catalog.OpenAttachments);
    }

    [Fact]
    public async Task StopClosesAConnectionStuckOnTheDeviceAfterTheTimeout()
    {
        var device = new MemoryBlockDevice(Size);
        device.Gate = (_, _, cancellation) => Task.Delay(Timeout.Infinite, cancellation);
        var catalog = new TestExportCatalog().Add("vol0", device);
        var path = Path.Combine(_directory, "stuck.sock");
        var server = new NbdServer(catalog, _logger, new NbdServerOptions { ShutdownTimeout = TimeSpan.FromMilliseconds(200) });
        server.Start([new UnixDomainSocketEndPoint(path)]);
        using var socket = await ConnectAsync(new UnixDomainSocketEndPoint(path));
        var client = ClientOver(socket);
        await client.StartAsync();
        await client.SendRequestAsync(NbdWire.CmdRead, 0, 512);
        await Eventually.WaitUntilAsync(() => device.Calls.Count == 1);

        await server.StopAsync().WaitAsync(NbdTestClient.Timeout);

        Assert.Equal(0, server.ConnectionCount);
        Assert.Single(_logger.Messages(33));
        Assert.Equal(0, catalog.OpenAttachments);
    }

    [Fact]
    public async Task StopClosesTheSocketOfADeviceCallThatIgnoresCancellation()
    {
        var device = new MemoryBlockDevice(Size);
        var never = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        device.Gate = (_, _, _) => never.Task;
        var catalog = new TestExportCatalog().Add("vol0", device);
        var path = Path.Combine(_directory, "ignores.sock");
        var options = new NbdServerOptions { ShutdownTimeout = TimeSpan.FromMilliseconds(100), AbortTimeout = TimeSpan.FromMilliseconds(100) };
        var server = new NbdServer(catalog, _logger, options);
        server.Start([new UnixDomainSocketEndPoint(path)]);
        using var socket = await ConnectAsync(new UnixDomainSocketEndPoint(path));
        var client = ClientOver(socket);
        await client.StartAsync();
        await client.SendRequestAsync(NbdWire.CmdWrite, 0, 512, payload: new byte[512]);
        await Eventually.WaitUntilAsync(() => device.Calls.Count == 1);

        await server.StopAsync().WaitAsync(NbdTestClient.Timeout);

        Assert.Single(_logger.Messages(34));
        Assert.True(await client.ServerClosedAsync());
        never.SetResult();
        await Eventually.WaitUntilAsync(() => server.ConnectionCount == 0);
        Assert.Equal(0, catalog.OpenAttachments);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task LargeWritesPipelinedWithSmallOnesArriveWholeOverASocket(bool tcp)
    {
        // Over a socket the rest of a large WRITE payload is received straight into its buffer once the
        // input pipe runs dry; the requests after it must still be parsed from where it ended.
        const int large = 1 << 20;
        var device = new MemoryBlockDevice(4 * large);
        var catalog = new TestExportCatalog().Add("vol0", device);
        EndPoint endPoint = tcp ? new IPEndPoint(IPAddress.Loopback, 0) : new UnixDomainSocketEndPoint(Path.Combine(_directory, "large.sock"));
        await using var server = new NbdServer(catalog, _logger);
        server.Start([endPoint]);
        using var socket = await ConnectAsync(Assert.Single(server.EndPoints));
        var client = ClientOver(socket);
        await client.StartAsync();
        var writes = new (ulong Offset, byte[] Data)[]
        {
            (0, NbdBytes.Pattern(large, 1)),
            ((ulong)large, NbdBytes.Pattern(4096, 2)),
            ((ulong)large + 4096, NbdBytes.Pattern(large - 4096, 3)),
            (3UL * large, NbdBytes.Pattern(large, 4)),
        };

        var sending = Task.Run(async () =>
        {
            for (var i = 0; i < writes.Length; i++)
            {
                await client.SendRequestAsync(NbdWire.CmdWrite, writes[i].Offset, (uint)writes[i].Data.Length, handle: (ulong)i, payload: writes[i].Data);
            }
        });
        var replies = new List<NbdReply>();
        for (var i = 0; i < writes.Length; i++)
        {
            replies.Add(await client.ReadReplyAsync());
        }

        await sending.WaitAsync(NbdTestClient.Timeout);
        Assert.All(replies, r => Assert.Equal(0u, r.ErrorValue));
        Assert.Equal([0ul, 1ul, 2ul, 3ul], replies.Select(r => r.Handle).Order());
        var snapshot = device.Snapshot();
        foreach (var (offset, data) in writes)
        {
            Assert.True(data.AsSpan().SequenceEqual(snapshot.AsSpan((int)offset, data.Length)), $"the write at {offset} did not arrive whole");
        }

        await client.AssertWorksAsync(2UL * large);
    }

    [Fact]
    public async Task AClientThatVanishesMidLargePayloadOverASocketEndsTheSessionWithoutWriting()
    {
        var device = new MemoryBlockDevice(Size);
        var catalog = new TestExportCatalog().Add("vol0", device);
        var path = Path.Combine(_directory, "vanish.sock");
        await using var server = new NbdServer(catalog, _logger);
        server.Start([new UnixDomainSocketEndPoint(path)]);
        using var socket = await ConnectAsync(new UnixDomainSocketEndPoint(path));
        var client = ClientOver(socket);
        await client.StartAsync();
        var request = NbdBytes.Request(NbdWire.CmdWrite, 0, Size, payload: NbdBytes.Pattern(Size, 5));

        await client.SendAsync(request[..(300 * 1024)]);
        await Task.Delay(100);
        socket.Shutdown(SocketShutdown.Send);

        await Eventually.WaitUntilAsync(() => server.ConnectionCount == 0);
        Assert.Contains("TruncatedMessage", Assert.Single(_logger.Messages(2)), StringComparison.Ordinal);
        Assert.Empty(device.Calls);
        Assert.Equal(0, catalog.OpenAttachments);
    }

    [Fact]
    public async Task StopClosesAConnectionWhoseLargePayloadNeverArrives()
    {
        var device = new MemoryBlockDevice(Size);
        var catalog = new TestExportCatalog().Add("vol0", device);
        var path = Path.Combine(_directory, "stalled.sock");
        var server = new NbdServer(catalog, _logger, new NbdServerOptions { ShutdownTimeout = TimeSpan.FromMilliseconds(200) });
        server.Start([new UnixDomainSocketEndPoint(path)]);
        using var socket = await ConnectAsync(new UnixDomainSocketEndPoint(path));
        var client = ClientOver(socket);
        await client.StartAsync();
        await client.SendAsync(NbdBytes.Request(NbdWire.CmdWrite, 0, Size, payload: NbdBytes.Pattern(Size, 6))[..(300 * 1024)]);
        await Task.Delay(100);

        await server.StopAsync().WaitAsync(NbdTestClient.Timeout);

        Assert.Single(_logger.Messages(33));
        Assert.Empty(_logger.Messages(34));
        Assert.Equal(0, server.ConnectionCount);
        Assert.Empty(device.Calls);
        Assert.Equal(0, catalog.OpenAttachments);
    }

    private static async Task<Socket> ConnectAsync(EndPoint endPoint)
    {
        var socket = endPoint is IPEndPoint ip
            ? new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp)
            : new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(endPoint).WaitAsync(NbdTestClient.Timeout);
        return socket;
    }

    private static NbdTestClient ClientOver(Socket socket)
    {
        var stream = new NetworkStream(socket, ownsSocket: false);
        return new NbdTestClient(new DuplexPipe(PipeReader.Create(stream), PipeWriter.Create(stream)));
    }
}

using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Replicator.Protocol.Nbd;
using Replicator.Protocol.Tests.Nbd.Support;

namespace Replicator.Protocol.Tests.Nbd;

/// <summary>The caps on connections per server and per export, on loopback TCP.</summary>
public sealed class NbdConnectionLimitTests : IAsyncDisposable
{
    private const int Size = 1 << 20;

    private readonly TestLogger _logger = new();
    private readonly TestExportCatalog _catalog = new TestExportCatalog()
        .Add("vol0", new MemoryBlockDevice(Size))
        .Add("vol1", new MemoryBlockDevice(Size));
    private readonly List<Socket> _sockets = [];
    private NbdServer? _server;

    public async ValueTask DisposeAsync()
    {
        _sockets.ForEach(s => s.Dispose());
        if (_server is not null)
        {
            await _server.StopAsync().WaitAsync(NbdTestClient.Timeout);
        }
    }

    [Fact]
    public async Task TheServerClosesTheConnectionBeyondItsCapAndAcceptsAgainOnceOneCloses()
    {
        var endPoint = Serve(new NbdServerOptions { MaxConnections = 2 });
        var first = await OpenAsync(endPoint);
        var second = await OpenAsync(endPoint);
        await first.Client.ReadGreetingAsync();
        await second.Client.ReadGreetingAsync();

        var third = await OpenAsync(endPoint);

        Assert.True(await third.Client.ServerClosedAsync());
        var refusal = Assert.Single(_logger.Messages(36));
        Assert.Contains("2 connections are open, the most it allows", refusal, StringComparison.Ordinal);
        Assert.Equal(2, _server!.ConnectionCount);

        first.Socket.Dispose();
        await Eventually.WaitUntilAsync(() => _server.ConnectionCount == 1, "the server saw the first connection close");
        var fourth = await OpenAsync(endPoint);
        await fourth.Client.StartAsync();
        await fourth.Client.AssertWorksAsync();
    }

    [Fact]
    public async Task RefusalsBeyondTheCapAreLoggedAtMostOnceASecond()
    {
        var endPoint = Serve(new NbdServerOptions { MaxConnections = 1 });
        await (await OpenAsync(endPoint)).Client.ReadGreetingAsync();

        for (var i = 0; i < 5; i++)
        {
            Assert.True(await (await OpenAsync(endPoint)).Client.ServerClosedAsync());
        }

        Assert.InRange(_logger.Messages(36).Count, 1, 2);
    }

    [Fact]
    public async Task GoBeyondTheCapOfAnExportIsRefusedAndAnotherExportCanBeChosen()
    {
        var endPoint = Serve(new NbdServerOptions { MaxConnectionsPerExport = 1 });
        var first = await OpenAsync(endPoint);
        await first.Client.StartAsync("vol0");
        var second = await OpenAsync(endPoint);
        await second.Client.OpenAsync();

        var refused = (await second.Client.OptionAsync(NbdWire.OptGo, NbdBytes.InfoData("vol0"))).Single();

        Assert.Equal(NbdWire.RepErrPolicy, refused.Type);
        Assert.Equal("export 'vol0' already has 1 connections, the most this server allows on one export", refused.Text);
        Assert.Equal(1, _server!.ConnectionsOn("vol0"));
        var info = await second.Client.OptionAsync(NbdWire.OptInfo, NbdBytes.InfoData("vol0"));
        Assert.Equal(NbdWire.RepAck, info[^1].Type);
        await second.Client.StartAsync("vol1", open: false);
        await second.Client.AssertWorksAsync();
        await first.Client.AssertWorksAsync();
    }

    [Fact]
    public async Task AnExportAcceptsAgainOnceAConnectionOnItCloses()
    {
        var endPoint = Serve(new NbdServerOptions { MaxConnectionsPerExport = 1 });
        var first = await OpenAsync(endPoint);
        await first.Client.StartAsync("vol0");
        var second = await OpenAsync(endPoint);
        await second.Client.OpenAsync();
        Assert.Equal(NbdWire.RepErrPolicy, (await second.Client.OptionAsync(NbdWire.OptGo, NbdBytes.InfoData("vol0"))).Single().Type);

        await first.Client.SendRequestAsync(NbdWire.CmdDisc);
        await Eventually.WaitUntilAsync(() => _server!.ConnectionsOn("vol0") == 0, "the export's place was given back");

        await second.Client.StartAsync("vol0", open: false);
        await second.Client.AssertWorksAsync();
        Assert.Equal(1, _server!.ConnectionsOn("vol0"));
    }

    [Fact]
    public async Task ExportNameBeyondTheCapOfAnExportEndsTheConnection()
    {
        var endPoint = Serve(new NbdServerOptions { MaxConnectionsPerExport = 1 });
        var first = await OpenAsync(endPoint);
        await first.Client.StartAsync("vol0");
        var second = await OpenAsync(endPoint);
        await second.Client.OpenAsync();

        await second.Client.SendAsync(NbdBytes.Option(NbdWire.OptExportName, "vol0"u8.ToArray()));

        Assert.True(await second.Client.ServerClosedAsync());
        await Eventually.WaitUntilAsync(
            () => _logger.Messages(2).Any(line => line.Contains("ExportRefused", StringComparison.Ordinal) && line.Contains("already has 1 connections", StringComparison.Ordinal)),
            "the refusal was logged");
        Assert.Equal(1, _server!.ConnectionsOn("vol0"));
    }

    [Fact]
    public void CapsBelowOneAreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(new NbdServerOptions { MaxConnections = 0 }.Validate);
        Assert.Throws<ArgumentOutOfRangeException>(new NbdServerOptions { MaxConnectionsPerExport = 0 }.Validate);
    }

    private IPEndPoint Serve(NbdServerOptions options)
    {
        _server = new NbdServer(_catalog, _logger, options);
        _server.Start([new IPEndPoint(IPAddress.Loopback, 0)]);
        return (IPEndPoint)_server.EndPoints[0];
    }

    private async Task<(Socket Socket, NbdTestClient Client)> OpenAsync(IPEndPoint endPoint)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _sockets.Add(socket);
        await socket.ConnectAsync(endPoint).WaitAsync(NbdTestClient.Timeout);
        var stream = new NetworkStream(socket, ownsSocket: false);
        return (socket, new NbdTestClient(new DuplexPipe(PipeReader.Create(stream), PipeWriter.Create(stream))));
    }
}

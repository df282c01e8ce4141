using System.Net;
using System.Net.Sockets;
using Replicator.Core.Devices;
using Replicator.Protocol.Nbd;
using Replicator.Protocol.Nbd.Client;
using Replicator.Protocol.Tests.Nbd.Support;

namespace Replicator.Protocol.Tests.Nbd.Client;

/// <summary>The gateway's NBD client over TLS against this project's server on loopback TCP.</summary>
public sealed class NbdClientTlsTests : IAsyncDisposable
{
    private const int Size = 1 << 20;
    private static readonly TimeSpan Timeout = NbdTestClient.Timeout;

    private readonly TestLogger _logger = new();
    private readonly TestExportCatalog _catalog = new TestExportCatalog().Add("vol0", new MemoryBlockDevice(Size));
    private readonly List<NbdClient> _clients = [];
    private NbdServer? _server;

    public async ValueTask DisposeAsync()
    {
        foreach (var client in _clients)
        {
            client.Abort("test over");
            await client.Closed.WaitAsync(Timeout);
        }

        if (_server is not null)
        {
            await _server.StopAsync().WaitAsync(Timeout);
        }
    }

    [Theory]
    [InlineData("nbds://{0}/vol0", "Off")]
    [InlineData("nbd://{0}/vol0", "Required")]
    [InlineData("nbd://{0}/vol0", "Optional")]
    public async Task TheClientConnectsOverTlsToAServerThatRequiresIt(string uri, string clientMode)
    {
        var endPoint = Serve(NbdTlsMode.Required);

        var client = await ConnectAsync(uri, endPoint, new NbdClientOptions { TlsMode = Enum.Parse<NbdTlsMode>(clientMode), TlsAuthentication = TestCertificates.Cluster.ClientAuthentication() });
        await client.WriteAsync(8192, NbdBytes.Pattern(4096, 8), IoFlags.Fua);
        var buffer = new byte[4096];
        await client.ReadAsync(8192, buffer);
        await client.DisconnectAsync();

        Assert.Equal(NbdBytes.Pattern(4096, 8), buffer);
        Assert.True(client.Export.StructuredReplies);
        Assert.NotNull(client.Export.BaseAllocationContextId);
        Assert.Equal(NbdClientEndReason.Disconnected, (await client.Closed).Reason);
        Assert.Contains(_logger.Messages(100), line => line.Contains("TLS Tls1", StringComparison.Ordinal));
        await Eventually.WaitUntilAsync(() => _server!.ConnectionCount == 0, "the server saw the connection end");
        Assert.Contains(_logger.Messages(2), line => line.Contains("ClientDisconnect", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AClientWithoutTlsIsRefusedByAServerThatRequiresIt()
    {
        var endPoint = Serve(NbdTlsMode.Required);

        var failure = await Assert.ThrowsAsync<NbdHandshakeException>(() => ConnectAsync("nbd://{0}/vol0", endPoint, new NbdClientOptions()));

        Assert.Equal(NbdWire.RepErrTlsReqd, failure.Reply);
        Assert.Contains("STARTTLS", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AClientThatRequiresTlsGivesUpOnAServerWithout()
    {
        var endPoint = Serve(NbdTlsMode.Off);

        var failure = await Assert.ThrowsAsync<NbdHandshakeException>(() => ConnectAsync("nbds://{0}/vol0", endPoint, ClientOptions()));

        Assert.Equal(NbdWire.RepErrPolicy, failure.Reply);
        Assert.Contains("refused TLS", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AClientWithOptionalTlsGoesOnInClearWhenTheServerHasNone()
    {
        var endPoint = Serve(NbdTlsMode.Off);

        var client = await ConnectAsync("nbd://{0}/vol0", endPoint, ClientOptions() with { TlsMode = NbdTlsMode.Optional });
        await client.FlushAsync();

        Assert.Contains(_logger.Messages(100), line => line.EndsWith("TLS no", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AServerWhoseCertificateIsFromAnotherCaIsRefused()
    {
        var endPoint = Serve(NbdTlsMode.Required);
        var options = new NbdClientOptions { TlsAuthentication = TestCertificates.Stranger.ClientAuthentication() };

        var failure = await Assert.ThrowsAsync<NbdHandshakeException>(() => ConnectAsync("nbds://{0}/vol0", endPoint, options));

        Assert.Contains("TLS handshake", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AServerWhoseCertificateDoesNotNameTheHostIsRefused()
    {
        var endPoint = Serve(NbdTlsMode.Required);
        var authentication = TestCertificates.Cluster.ClientAuthentication();
        var options = ClientOptions() with { TlsAuthentication = _ => authentication("node-b.example") };

        var failure = await Assert.ThrowsAsync<NbdHandshakeException>(() => ConnectAsync("nbds://{0}/vol0", endPoint, options));

        Assert.Contains("TLS handshake", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TlsWithoutTheTrustedCaIsAConfigurationError()
    {
        var endPoint = Serve(NbdTlsMode.Required);

        await Assert.ThrowsAsync<ArgumentException>(() => ConnectAsync("nbds://{0}/vol0", endPoint, new NbdClientOptions { TlsMode = NbdTlsMode.Required }));
    }

    [Fact]
    public async Task OneServerRequiresTlsOnTcpAndServesItsUnixSocketInClear()
    {
        var directory = Directory.CreateTempSubdirectory("nbd-tls-").FullName;
        try
        {
            var socket = Path.Combine(directory, "nbd.sock");
            var options = new NbdServerOptions { TlsMode = NbdTlsMode.Required, TlsAuthentication = TestCertificates.Cluster.ServerAuthentication() };
            _server = new NbdServer(_catalog, _logger, options);
            _server.Start([new IPEndPoint(IPAddress.Loopback, 0), new UnixDomainSocketEndPoint(socket)]);
            var tcp = (IPEndPoint)_server.EndPoints[0];

            var plain = await ConnectAsync($"nbd+unix:///vol0?socket={socket}", tcp, new NbdClientOptions());
            await plain.FlushAsync();
            var refused = await Assert.ThrowsAsync<NbdHandshakeException>(() => ConnectAsync("nbd://{0}/vol0", tcp, new NbdClientOptions()));

            Assert.Equal(NbdWire.RepErrTlsReqd, refused.Reply);
            Assert.Contains(_logger.Messages(100), line => line.EndsWith("TLS no", StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void NbdsUrisAskForTls()
    {
        var uri = NbdUri.Parse("nbds://127.0.0.1:10900/vol0");
        var unix = NbdUri.Parse("nbds+unix:///vol0?socket=/run/nbd.sock");

        Assert.True(uri.RequiresTls);
        Assert.True(unix.RequiresTls);
        Assert.False(NbdUri.Parse("nbd://127.0.0.1/vol0").RequiresTls);
        Assert.Equal("nbds://127.0.0.1:10900/vol0", uri.ToString());
        Assert.Equal("127.0.0.1", uri.Host);
    }

    private static NbdClientOptions ClientOptions() => new() { TlsAuthentication = TestCertificates.Cluster.ClientAuthentication() };

    private IPEndPoint Serve(NbdTlsMode mode)
    {
        var options = new NbdServerOptions { TlsMode = mode, TlsAuthentication = TestCertificates.Cluster.ServerAuthentication() };
        _server = new NbdServer(_catalog, _logger, options);
        _server.Start([new IPEndPoint(IPAddress.Loopback, 0)]);
        return (IPEndPoint)_server.EndPoints[0];
    }

    private async Task<NbdClient> ConnectAsync(string uri, IPEndPoint endPoint, NbdClientOptions options)
    {
        var client = await NbdClient.ConnectAsync(NbdUri.Parse(string.Format(null, uri, endPoint)), _logger, options).WaitAsync(Timeout);
        _clients.Add(client);
        return client;
    }
}

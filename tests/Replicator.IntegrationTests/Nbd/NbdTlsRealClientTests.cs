using System.Net;
using Replicator.IntegrationTests.Gateway;
using Replicator.IntegrationTests.Harness;
using Replicator.Protocol.Nbd;
using Replicator.Protocol.Tests.Nbd.Support;

namespace Replicator.IntegrationTests.Nbd;

/// <summary>
/// NBD over TLS with the real clients (libnbd's nbdinfo and nbdsh, QEMU's qemu-io) against this project's NBD
/// server on loopback TCP, requiring TLS and client certificates of a CA made for the test. The client
/// certificates are in the directory layout both tools read: ca-cert.pem, client-cert.pem, client-key.pem.
/// </summary>
public sealed class NbdTlsRealClientTests : IAsyncDisposable
{
    private const string Volume = "vol";

    private readonly string _directory = Directory.CreateTempSubdirectory("nbd-tls-").FullName;
    private readonly ScriptedDevice _device = new(InProcessNode.Size);
    private readonly TestLogger _log = new();
    private readonly NbdServer _server;
    private readonly int _port;

    public NbdTlsRealClientTests()
    {
        var options = new NbdServerOptions { TlsMode = NbdTlsMode.Required, TlsAuthentication = TestCertificates.Cluster.ServerAuthentication() };
        _server = new NbdServer(new SingleVolumeCatalog(Volume, _device), _log, options);
        _server.Start([new IPEndPoint(IPAddress.Loopback, 0)]);
        _port = ((IPEndPoint)_server.EndPoints[0]).Port;
    }

    private string Certificates => TestCertificates.Cluster.WriteClientDirectory(Path.Combine(_directory, "client"));

    private string TlsUri => $"nbds://127.0.0.1:{_port}/{Volume}";

    public async ValueTask DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task NbdinfoWithTheClientCertificatesSeesTheExport()
    {
        var result = await ExternalTool.RunCheckedAsync("nbdinfo", ["--json", $"{TlsUri}?tls-certificates={Certificates}"]);

        Assert.Contains($"\"export-size\": {InProcessNode.Size}", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("\"TLS\": true", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NbdshWithSetTlsCertificatesWritesAndReadsBack()
    {
        var script = $"""
            h.set_tls(nbd.TLS_REQUIRE)
            h.set_tls_certificates("{Certificates}")
            h.connect_uri("{TlsUri}")
            h.pwrite(b"\x5a" * 65536, 1048576)
            assert h.pread(65536, 1048576) == b"\x5a" * 65536
            assert h.get_tls_negotiated()
            h.shutdown()
            """;

        await ExternalTool.RunCheckedAsync("nbdsh", ["-c", script]);

        Assert.All(_device.Read(1 << 20, 65536), b => Assert.Equal(0x5a, b));
    }

    [Fact]
    public async Task QemuIoWithTlsCredsWritesAndReadsBack()
    {
        await ExternalTool.RunCheckedAsync("qemu-io",
        [
            "--object", $"tls-creds-x509,id=tls0,dir={Certificates},endpoint=client",
            "--image-opts", $"driver=nbd,server.type=inet,server.host=127.0.0.1,server.port={_port},export={Volume},tls-creds=tls0",
            "-c", "write -P 0xa5 2M 128k",
            "-c", "read -P 0xa5 2M 128k",
        ]);

        Assert.All(_device.Read(2 << 20, 128 << 10), b => Assert.Equal(0xa5, b));
    }

    [Fact]
    public async Task PlainNbdinfoIsRefusedBecauseTlsIsRequired()
    {
        var result = await ExternalTool.RunAsync("nbdinfo", [$"nbd://127.0.0.1:{_port}/{Volume}"]);

        // libnbd reports NBD_REP_ERR_TLS_REQD as ENOTSUP; the server's log names the reply.
        Assert.True(result.ExitCode != 0, result.Describe());
        Assert.Contains("without TLS", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("nbd_opt_go: server replied with error", result.Stderr, StringComparison.Ordinal);
        Assert.Contains(_log.Messages(10), line => line.Contains("option GO refused with ERR_TLS_REQD", StringComparison.Ordinal));
        Assert.Equal(0, _device.Calls);
    }

    [Fact]
    public async Task NbdinfoWithACertificateFromAnotherCaIsRefused()
    {
        var stranger = TestCertificates.Cluster.WriteClientDirectory(Path.Combine(_directory, "stranger"), TestCertificates.Stranger.Client);

        var result = await ExternalTool.RunAsync("nbdinfo", [$"{TlsUri}?tls-certificates={stranger}"]);

        Assert.True(result.ExitCode != 0, result.Describe());
        await WaitForLogAsync(2, "TlsFailed");
        Assert.Equal(0, _server.ConnectionsOn(Volume));
    }

    private async Task WaitForLogAsync(int eventId, string text)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!_log.Messages(eventId).Any(line => line.Contains(text, StringComparison.Ordinal)))
        {
            Assert.True(DateTime.UtcNow < deadline, $"the server did not log '{text}': {string.Join("; ", _log.Messages(eventId))}");
            await Task.Delay(20);
        }
    }
}

using Replicator.Protocol.Nbd;
using Replicator.Protocol.Tests.Nbd.Support;

namespace Replicator.Protocol.Tests.Nbd;

/// <summary>NBD_OPT_STARTTLS as the spec's "TLS support" section and nbdkit's <c>--tls=on/require</c> have it, over in-memory pipes.</summary>
public class NbdTlsTests
{
    private const int Size = 1 << 20;

    private static readonly TestCertificates Cluster = TestCertificates.Cluster;

    [Theory]
    [InlineData("Required")]
    [InlineData("Optional")]
    public async Task StartTlsThenGoServesTheExportOverTls(string mode)
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size), Options(Enum.Parse<NbdTlsMode>(mode)));
        await harness.Client.OpenAsync();

        var tls = await harness.Client.StartTlsAsync(Cluster.ClientAuthentication());
        await harness.Client.StartAsync(open: false, structured: true, baseAllocation: true);
        await harness.Client.AssertWorksAsync(4096);
        await harness.Client.SendRequestAsync(NbdWire.CmdDisc);

        Assert.Equal(NbdConnectionEndReason.ClientDisconnect, await harness.EndedAsync());
        Assert.Contains(harness.Logger.Messages(12), line => line.Contains("CN=cluster nbd client", StringComparison.Ordinal));
        await tls.DisposeAsync();
    }

    public static TheoryData<string> OptionsBeforeTls() =>
        [.. NbdSamples.Options.Keys.Where(name => name is not ("abort" or "starttls" or "export-name" or "export-name-default"))];

    [Theory]
    [MemberData(nameof(OptionsBeforeTls))]
    public async Task WithTlsRequiredEveryOptionBeforeStartTlsGetsTlsReqdAndTheConnectionStaysUsable(string sample)
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size), Options(NbdTlsMode.Required));
        await harness.Client.OpenAsync();

        await harness.Client.SendAsync(NbdSamples.Options[sample]);
        var reply = await harness.Client.ReadOptionReplyAsync();

        Assert.Equal(NbdWire.RepErrTlsReqd, reply.Type);
        Assert.Contains("STARTTLS", reply.Text, StringComparison.Ordinal);
        Assert.Equal(0, harness.Catalog.OpenAttachments);
        await using var tls = await harness.Client.StartTlsAsync(Cluster.ClientAuthentication());
        await harness.Client.StartAsync(open: false);
        await harness.Client.AssertWorksAsync();
    }

    [Fact]
    public async Task WithTlsRequiredAnOversizedOptionBeforeStartTlsGetsTlsReqdAndIsSkipped()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size), Options(NbdTlsMode.Required));
        await harness.Client.OpenAsync();

        await harness.Client.SendAsync([.. NbdBytes.OptionHeader(NbdWire.OptGo, 100_000), .. new byte[100_000]]);

        Assert.Equal(NbdWire.RepErrTlsReqd, (await harness.Client.ReadOptionReplyAsync()).Type);
        await using var tls = await harness.Client.StartTlsAsync(Cluster.ClientAuthentication());
        await harness.Client.StartAsync(open: false);
    }

    [Fact]
    public async Task WithTlsRequiredAbortBeforeStartTlsIsAcknowledged()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size), Options(NbdTlsMode.Required));
        await harness.Client.OpenAsync();

        Assert.Equal(NbdWire.RepAck, (await harness.Client.OptionAsync(NbdWire.OptAbort)).Single().Type);
        Assert.Equal(NbdConnectionEndReason.ClientAbort, await harness.EndedAsync());
    }

    [Fact]
    public async Task WithTlsRequiredExportNameBeforeStartTlsEndsTheConnection()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size), Options(NbdTlsMode.Required));
        await harness.Client.OpenAsync();

        await harness.Client.SendAsync(NbdSamples.Options["export-name"]);

        Assert.True(await harness.Client.ServerClosedAsync());
        Assert.Equal(NbdConnectionEndReason.TlsRequired, await harness.EndedAsync());
    }

    [Fact]
    public async Task WithTlsOptionalTheClientMayStayInClear()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size), Options(NbdTlsMode.Optional));

        await harness.Client.StartAsync(structured: true);

        await harness.Client.AssertWorksAsync();
        Assert.Empty(harness.Logger.Messages(12));
    }

    [Fact]
    public async Task StartTlsForgetsWhatWasNegotiatedInClear()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size), Options(NbdTlsMode.Optional));
        await harness.Client.OpenAsync();
        await harness.Client.OptionAsync(NbdWire.OptStructuredReply);
        await harness.Client.OptionAsync(NbdWire.OptSetMetaContext, NbdBytes.MetaContextData("vol0", NbdWire.BaseAllocation));

        await using var tls = await harness.Client.StartTlsAsync(Cluster.ClientAuthentication());
        var export = await harness.Client.StartAsync(open: false);

        Assert.Equal(0, export.Flags & NbdWire.FlagSendDf);
        var status = await harness.Client.RequestAsync(NbdWire.CmdBlockStatus, 0, 4096);
        Assert.Equal(NbdWire.EInval, status.ErrorValue);
    }

    [Fact]
    public async Task ASecondStartTlsIsInvalidAndTheConnectionStaysUsable()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size), Options(NbdTlsMode.Required));
        await harness.Client.OpenAsync();
        await using var tls = await harness.Client.StartTlsAsync(Cluster.ClientAuthentication());

        var again = (await harness.Client.OptionAsync(NbdWire.OptStartTls)).Single();

        Assert.Equal(NbdWire.RepErrInvalid, again.Type);
        await harness.Client.StartAsync(open: false);
        await harness.Client.AssertWorksAsync();
    }

    [Fact]
    public async Task StartTlsFromAClientWithoutFixedNewstyleIsInvalid()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size), Options(NbdTlsMode.Optional));
        await harness.Client.OpenAsync(clientFlags: 0);

        var reply = (await harness.Client.OptionAsync(NbdWire.OptStartTls)).Single();

        Assert.Equal(NbdWire.RepErrInvalid, reply.Type);
        Assert.Contains("fixed newstyle", reply.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StartTlsWithDataIsInvalidAndTheConnectionStaysInClear()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size), Options(NbdTlsMode.Required));
        await harness.Client.OpenAsync();

        var reply = (await harness.Client.OptionAsync(NbdWire.OptStartTls, [1])).Single();

        Assert.Equal(NbdWire.RepErrInvalid, reply.Type);
        await using var tls = await harness.Client.StartTlsAsync(Cluster.ClientAuthentication());
        await harness.Client.StartAsync(open: false);
    }

    [Fact]
    public async Task AClientWithoutACertificateIsRefusedWhenClientCertificatesAreRequired()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size), Options(NbdTlsMode.Required));
        await harness.Client.OpenAsync();

        await Assert.ThrowsAnyAsync<Exception>(() => UseTlsAsync(harness, Cluster.ClientAuthentication(withCertificate: false)));

        Assert.Equal(NbdConnectionEndReason.TlsFailed, await harness.EndedAsync());
        Assert.Contains(harness.Logger.Messages(2), line => line.Contains("TLS handshake failed", StringComparison.Ordinal)
            && line.Contains("RemoteCertificateNotAvailable", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AClientWithACertificateFromAnotherCaIsRefused()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size), Options(NbdTlsMode.Required));
        await harness.Client.OpenAsync();

        await Assert.ThrowsAnyAsync<Exception>(() => UseTlsAsync(harness, Cluster.ClientAuthentication(TestCertificates.Stranger.Client)));

        Assert.Equal(NbdConnectionEndReason.TlsFailed, await harness.EndedAsync());
        Assert.Contains(harness.Logger.Messages(2), line => line.Contains("certificate chain", StringComparison.Ordinal));
    }

    [Fact]
    public async Task WithoutClientCertificatesRequiredAnyClientMayEncrypt()
    {
        var options = Options(NbdTlsMode.Required) with { TlsAuthentication = Cluster.ServerAuthentication(requireClientCertificates: false) };
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size), options);
        await harness.Client.OpenAsync();

        await using var tls = await harness.Client.StartTlsAsync(Cluster.ClientAuthentication(withCertificate: false));
        await harness.Client.StartAsync(open: false);

        await harness.Client.AssertWorksAsync();
    }

    [Fact]
    public async Task AClientThatSendsStartTlsAndThenStallsIsDroppedAfterTheHandshakeTimeout()
    {
        var options = Options(NbdTlsMode.Required) with { HandshakeTimeout = TimeSpan.FromMilliseconds(300) };
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size), options);
        await harness.Client.OpenAsync();

        Assert.Equal(NbdWire.RepAck, (await harness.Client.OptionAsync(NbdWire.OptStartTls)).Single().Type);

        Assert.True(await harness.Client.ServerClosedAsync());
        Assert.Equal(NbdConnectionEndReason.HandshakeTimeout, await harness.EndedAsync());
    }

    [Fact]
    public async Task AClientThatStallsAfterTlsIsDroppedAfterTheHandshakeTimeout()
    {
        var options = Options(NbdTlsMode.Required) with { HandshakeTimeout = TimeSpan.FromMilliseconds(500) };
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size), options);
        await harness.Client.OpenAsync();
        await using var tls = await harness.Client.StartTlsAsync(Cluster.ClientAuthentication());

        Assert.Equal(NbdConnectionEndReason.HandshakeTimeout, await harness.EndedAsync());
    }

    [Fact]
    public async Task BytesThatAreNotTlsAfterStartTlsEndTheConnection()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size), Options(NbdTlsMode.Required));
        await harness.Client.OpenAsync();
        Assert.Equal(NbdWire.RepAck, (await harness.Client.OptionAsync(NbdWire.OptStartTls)).Single().Type);

        await harness.Client.SendAsync(NbdSamples.Options["go"]);

        Assert.Equal(NbdConnectionEndReason.TlsFailed, await harness.EndedAsync());
    }

    [Fact]
    public async Task AStopDuringTransmissionOverTlsFinishesTheRequestInFlight()
    {
        var device = new MemoryBlockDevice(Size);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        device.Gate = (operation, _, _) => operation == "write" ? release.Task : Task.CompletedTask;
        await using var harness = NbdSessionHarness.Serving(device, Options(NbdTlsMode.Required));
        await harness.Client.OpenAsync();
        await using var tls = await harness.Client.StartTlsAsync(Cluster.ClientAuthentication());
        await harness.Client.StartAsync(open: false);
        await harness.Client.SendRequestAsync(NbdWire.CmdWrite, 0, 512, handle: 7, payload: NbdBytes.Pattern(512, 7));
        await Eventually.WaitUntilAsync(() => device.Calls.Count == 1, "the write reached the device");

        harness.Session.BeginShutdown();
        release.SetResult();

        var reply = await harness.Client.ReadReplyAsync();
        Assert.Equal((7ul, 0u), (reply.Handle, reply.ErrorValue));
        Assert.True(await harness.Client.ServerClosedAsync());
        Assert.Equal(NbdConnectionEndReason.ServerShutdown, await harness.EndedAsync());
    }

    [Fact]
    public async Task WithoutTlsStartTlsIsRefusedByPolicy()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size));
        await harness.Client.OpenAsync();

        var reply = (await harness.Client.OptionAsync(NbdWire.OptStartTls)).Single();

        Assert.Equal(NbdWire.RepErrPolicy, reply.Type);
        var export = await harness.Client.StartAsync(open: false);
        Assert.Equal((ulong)Size, export.Size);
    }

    [Fact]
    public void ATlsModeWithoutCertificatesIsRefused()
    {
        var options = new NbdServerOptions { TlsMode = NbdTlsMode.Required };

        var error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains("certificate", error.Message, StringComparison.Ordinal);
    }

    private static NbdServerOptions Options(NbdTlsMode mode) => new()
    {
        TlsMode = mode,
        TlsAuthentication = Cluster.ServerAuthentication(),
    };

    /// <summary>STARTTLS and a GO over TLS: throws when the TLS handshake is refused.</summary>
    private static async Task UseTlsAsync(NbdSessionHarness harness, Func<string, System.Net.Security.SslClientAuthenticationOptions> authentication)
    {
        await using var tls = await harness.Client.StartTlsAsync(authentication);
        await harness.Client.StartAsync(open: false);
    }
}

using System.IO.Pipelines;
using Microsoft.Extensions.Logging;
using Replicator.Protocol;
using Replicator.Protocol.Nbd;
using Replicator.Protocol.Tests.Nbd;
using Replicator.Protocol.Tests.Nbd.Support;

namespace Replicator.Fuzz.Targets;

/// <summary>
/// A whole NBD server session over an in-memory pipe: the input is everything a client sends (client flags, options,
/// then requests), after which the client closes. The session must end on its own with a reason other than
/// <see cref="NbdConnectionEndReason.InternalError"/>, log no error, and let go of every export it attached; the
/// whole run is bounded in time. With <c>tlsRequired</c>, the server requires TLS (FORCEDTLS): the refusals before
/// STARTTLS, and a TLS handshake fed with whatever follows it.
/// </summary>
internal sealed class NbdSessionTarget(bool tlsRequired) : IFuzzTarget
{
    /// <summary>Longest a session may take on one input; the handshake time below ends any handshake first.</summary>
    private static readonly TimeSpan RunLimit = TimeSpan.FromSeconds(20);

    private static readonly byte[] Flags = NbdBytes.ClientFlags(NbdWire.ClientFlagFixedNewstyle | NbdWire.ClientFlagNoZeroes);

    private static readonly Lazy<NbdServerOptions> TlsOptions = new(() => new NbdServerOptions
    {
        TlsMode = NbdTlsMode.Required,
        TlsAuthentication = TestCertificates.Cluster.ServerAuthentication(),
        HandshakeTimeout = TimeSpan.FromSeconds(5),
    });

    private static readonly NbdServerOptions PlainOptions = new() { HandshakeTimeout = TimeSpan.FromSeconds(5) };

    public string Name => tlsRequired ? "nbd-session-tls" : "nbd-session";

    public IEnumerable<(string Name, byte[] Bytes)> Seeds()
    {
        var options = NbdSamples.Options;
        var requests = NbdSamples.Requests;
        foreach (var (name, bytes) in options)
        {
            yield return ($"option-{name}", [.. Flags, .. bytes]);
        }

        if (tlsRequired)
        {
            yield return ("starttls-then-go", [.. Flags, .. options["list"], .. options["starttls"], .. options["go"]]);
            yield break;
        }

        var go = NbdBytes.Option(NbdWire.OptGo, NbdBytes.InfoData("vol0", NbdWire.InfoBlockSize));
        var structured = (byte[])[.. Flags, .. options["structured-reply"], .. options["set-meta-context"], .. go];
        foreach (var (name, bytes) in requests)
        {
            yield return ($"go-{name}", [.. Flags, .. go, .. bytes, .. requests["disc"]]);
            yield return ($"structured-{name}", [.. structured, .. bytes]);
        }

        yield return ("export-name-write", [.. Flags, .. options["export-name"], .. requests["write"], .. requests["read"]]);
        yield return ("unavailable", [.. Flags, .. NbdBytes.Option(NbdWire.OptGo, NbdBytes.InfoData("busy"))]);
    }

    public void Run(byte[] input) => RunAsync(input).WaitAsync(RunLimit).GetAwaiter().GetResult();

    private async Task RunAsync(byte[] input)
    {
        var catalog = new TestExportCatalog()
            .Add("vol0", new MemoryBlockDevice(256 << 10), "the first volume")
            .AddUnavailable("busy", new MemoryBlockDevice(4096));
        var logger = new TestLogger();
        var toServer = new Pipe();
        var toClient = new Pipe();
        var session = new NbdServerSession(
            new DuplexPipe(toServer.Reader, toClient.Writer), catalog, tlsRequired ? TlsOptions.Value : PlainOptions, logger, "fuzz",
            new NbdExportConnectionLimit(1));
        var run = Task.Run(session.RunAsync);
        var drain = FuzzCheck.DrainAsync(toClient.Reader);

        await toServer.Writer.WriteAsync(input);
        await toServer.Writer.CompleteAsync();
        var reason = await run;
        await drain;

        if (reason is NbdConnectionEndReason.InternalError or NbdConnectionEndReason.None)
        {
            throw new FuzzFailure($"the session ended with {reason}: {string.Join("; ", logger.Messages(2))}");
        }

        if (logger.Entries.FirstOrDefault(e => e.Level >= LogLevel.Error) is { Message: not null } error)
        {
            throw new FuzzFailure($"the session logged an error: {error.Message}");
        }

        if (catalog.OpenAttachments != 0)
        {
            throw new FuzzFailure($"the session ended ({reason}) holding {catalog.OpenAttachments} attachments");
        }
    }
}

using System.IO.Pipelines;
using Replicator.Protocol.Nbd;

namespace Replicator.Protocol.Tests.Nbd.Support;

/// <summary>
/// A session served over in-memory pipes with a test client on the other end. By default the pipes
/// are deep enough for a test to send a burst of requests before reading the replies.
/// </summary>
internal sealed class NbdSessionHarness : IAsyncDisposable
{
    public static readonly PipeOptions DeepPipes = new(pauseWriterThreshold: 256L << 20, resumeWriterThreshold: 128L << 20);

    private readonly Pipe _toServer;
    private readonly Pipe _toClient;

    public NbdSessionHarness(TestExportCatalog catalog, NbdServerOptions? options = null, PipeOptions? pipeOptions = null)
    {
        Catalog = catalog;
        _toServer = new Pipe(pipeOptions ?? DeepPipes);
        _toClient = new Pipe(pipeOptions ?? DeepPipes);
        Session = new NbdServerSession(
            new DuplexPipe(_toServer.Reader, _toClient.Writer), catalog, options ?? NbdServerOptions.Default, Logger, "test");
        Client = new NbdTestClient(new DuplexPipe(_toClient.Reader, _toServer.Writer));
        Run = Task.Run(Session.RunAsync);
    }

    public TestExportCatalog Catalog { get; }

    public TestLogger Logger { get; } = new();

    public NbdServerSession Session { get; }

    public NbdTestClient Client { get; }

    public Task<NbdConnectionEndReason> Run { get; }

    public static NbdSessionHarness Serving(MemoryBlockDevice device, NbdServerOptions? options = null, PipeOptions? pipeOptions = null) =>
        new(new TestExportCatalog().Add("vol0", device, "the first volume"), options, pipeOptions);

    /// <summary>Waits for the session to end and checks it let go of its export.</summary>
    public async Task<NbdConnectionEndReason> EndedAsync()
    {
        var reason = await Run.WaitAsync(NbdTestClient.Timeout);
        Assert.Equal(0, Catalog.OpenAttachments);
        return reason;
    }

    /// <summary>Log lines of refused requests (event 20).</summary>
    public IReadOnlyList<string> RefusalLog => Logger.Messages(20);

    public async ValueTask DisposeAsync()
    {
        Session.Abort();
        await _toServer.Writer.CompleteAsync();
        await _toClient.Reader.CompleteAsync();
        await Run.WaitAsync(NbdTestClient.Timeout);
    }
}

using System.Collections.Concurrent;
using System.IO.Pipelines;
using Microsoft.Extensions.Logging;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Tests.Peer;

/// <summary>The bound on every wait in the peer tests: far beyond what a passing test needs.</summary>
internal static class TestTimeouts
{
    public static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);
}

/// <summary>Two ends of an in-memory connection.</summary>
internal static class DuplexPipePair
{
    public static (IDuplexPipe A, IDuplexPipe B) Create(PipeOptions? options = null)
    {
        var aToB = new Pipe(options ?? PipeOptions.Default);
        var bToA = new Pipe(options ?? PipeOptions.Default);
        return (new DuplexPipe(bToA.Reader, aToB.Writer), new DuplexPipe(aToB.Reader, bToA.Writer));
    }
}

internal sealed record DuplexPipe(PipeReader Input, PipeWriter Output) : IDuplexPipe;

/// <summary>A handler made of a delegate.</summary>
internal sealed class DelegateHandler(Func<PeerIncomingRequest, CancellationToken, ValueTask> handle) : IPeerRequestHandler
{
    public ValueTask HandleAsync(PeerIncomingRequest request, CancellationToken cancellationToken) => handle(request, cancellationToken);

    /// <summary>Answers OK to everything, and a read with the bytes 0, 1, 2, ...</summary>
    public static DelegateHandler AlwaysOk() => new(async (request, _) =>
    {
        var data = request.Header.BodyCase == Envelope.BodyOneofCase.Read
            ? Enumerable.Range(0, (int)request.Header.Read.Length).Select(i => (byte)i).ToArray()
            : [];
        await request.ReplyAsync(ReplyStatus.Ok, payload: data);
    });
}

/// <summary>A logger that keeps every message, so tests can check what an operator would read.</summary>
internal sealed class ListLogger : ILogger
{
    private readonly ConcurrentQueue<(LogLevel Level, string Message)> _entries = new();

    public IReadOnlyList<(LogLevel Level, string Message)> Entries => [.. _entries];

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        => _entries.Enqueue((logLevel, formatter(state, exception)));

    public bool Contains(string phrase) => _entries.Any(entry => entry.Message.Contains(phrase, StringComparison.Ordinal));
}

/// <summary>Two started connections talking over in-memory pipes.</summary>
internal sealed class ConnectionPair : IAsyncDisposable
{
    public ConnectionPair(IDuplexPipe a, IDuplexPipe b, IPeerRequestHandler handlerA, IPeerRequestHandler handlerB, PeerConnectionOptions? options = null)
    {
        A = new PeerConnection(a, handlerA, options ?? PeerConnectionOptions.Default, LogA, "node-b");
        B = new PeerConnection(b, handlerB, options ?? PeerConnectionOptions.Default, LogB, "node-a");
        A.Start();
        B.Start();
    }

    public ListLogger LogA { get; } = new();

    public ListLogger LogB { get; } = new();

    /// <summary>Node A's connection to B: requests sent here are served by B's handler.</summary>
    public PeerConnection A { get; }

    public PeerConnection B { get; }

    public static ConnectionPair Create(IPeerRequestHandler handlerOfB, PeerConnectionOptions? options = null)
    {
        var (a, b) = DuplexPipePair.Create();
        return new ConnectionPair(a, b, DelegateHandler.AlwaysOk(), handlerOfB, options);
    }

    public async ValueTask DisposeAsync()
    {
        await A.CloseAsync().WaitAsync(TestTimeouts.Wait);
        await B.CloseAsync().WaitAsync(TestTimeouts.Wait);
    }
}

using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Replicator.Protocol.Tests.Nbd.Support;

/// <summary>Collects log lines so tests can check what was logged and how often.</summary>
internal sealed class TestLogger : ILogger, ILoggerFactory
{
    public ConcurrentQueue<(LogLevel Level, EventId Event, string Message)> Entries { get; } = new();

    public IReadOnlyList<string> Messages(int eventId) =>
        [.. Entries.Where(e => e.Event.Id == eventId).Select(e => e.Message)];

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        Entries.Enqueue((logLevel, eventId, formatter(state, exception)));

    public ILogger CreateLogger(string categoryName) => this;

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }
}

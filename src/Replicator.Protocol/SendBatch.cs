namespace Replicator.Protocol;

/// <summary>A connection whose flush a <see cref="SendBatch"/> can put off to its end.</summary>
internal interface IDeferredFlush
{
    /// <summary>The batch that put off the flush ended: send what was written in it. Runs on the batch's thread.</summary>
    void FlushDeferred();
}

/// <summary>
/// A stretch of synchronous work on one thread that may write to several connections: a receive loop
/// handling everything one read returned (the requests a client sent together, the replies a server sent
/// together). A connection written to during the batch sends once, when the batch ends, instead of once per
/// message: a gateway that forwards 32 requests read in one receive sends them in one send, and so on the
/// way back.
/// </summary>
/// <remarks>
/// A batch belongs to its thread and must end before the thread waits for anything (an await that does
/// not complete at once): what it put off is sent only when it ends, and what is waited for may depend on
/// it. A connection taken by a batch stays the batch's until it ends; other threads queue behind it, as
/// they would behind any writer, and the batch's end sends their messages too.
/// </remarks>
internal sealed class SendBatch
{
    [ThreadStatic]
    private static SendBatch? t_batch;

    private readonly List<IDeferredFlush> _deferred = [];
    private int _depth;

    /// <summary>The batch open on this thread, or null.</summary>
    public static SendBatch? Current => t_batch is { _depth: > 0 } batch ? batch : null;

    /// <summary>Opens a batch on this thread, or nests in the one open.</summary>
    public static void Enter() => (t_batch ??= new SendBatch())._depth++;

    /// <summary>Closes what <see cref="Enter"/> opened; the outermost close sends everything put off.</summary>
    public static void Exit()
    {
        var batch = t_batch!;
        if (--batch._depth == 0)
        {
            batch.FlushAll();
        }
    }

    /// <summary>Puts off <paramref name="connection"/>'s flush to the end of this batch; once per batch, by the connection.</summary>
    public void Defer(IDeferredFlush connection) => _deferred.Add(connection);

    private void FlushAll()
    {
        // A flush may complete work that opens and ends a batch on this thread again: take each entry
        // off before running it, so none runs twice.
        while (_deferred.Count > 0)
        {
            var connection = _deferred[^1];
            _deferred.RemoveAt(_deferred.Count - 1);
            connection.FlushDeferred();
        }
    }
}

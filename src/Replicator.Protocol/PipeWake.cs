using System.IO.Pipelines;

namespace Replicator.Protocol;

/// <summary>
/// Wakes the loops waiting on a connection's pipes so they see that it is ending, at any moment of its close.
/// </summary>
/// <remarks>
/// A connection can end from two sides at once: a caller aborts it while its receive loop finds the socket
/// closed and completes both pipes. A pipe over a stream that has been completed refuses a cancel (its token
/// source is disposed); there is then nothing left to wake, so the refusal is not an error. Without this, the
/// gateway died of an <see cref="ObjectDisposedException"/> when a node it was aborting was killed at the same
/// moment.
/// </remarks>
internal static class PipeWake
{
    /// <summary>Cancels a pending flush, then a pending read (last: cancelling a receive can run the rest of the connection, up to its close, on this thread).</summary>
    public static void Both(IDuplexPipe transport)
    {
        Flush(transport.Output);
        Read(transport.Input);
    }

    public static void Read(PipeReader input)
    {
        try
        {
            input.CancelPendingRead();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public static void Flush(PipeWriter output)
    {
        try
        {
            output.CancelPendingFlush();
        }
        catch (ObjectDisposedException)
        {
        }
    }
}

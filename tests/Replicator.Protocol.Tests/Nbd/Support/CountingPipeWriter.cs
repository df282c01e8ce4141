using System.IO.Pipelines;

namespace Replicator.Protocol.Tests.Nbd.Support;

/// <summary>A pipe writer that counts the flushes (the sends a socket would make) and passes everything on.</summary>
internal sealed class CountingPipeWriter(PipeWriter inner) : PipeWriter
{
    private int _flushes;

    public int Flushes => Volatile.Read(ref _flushes);

    public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

    public override long UnflushedBytes => inner.UnflushedBytes;

    public override void Advance(int bytes) => inner.Advance(bytes);

    public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);

    public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);

    public override void CancelPendingFlush() => inner.CancelPendingFlush();

    public override void Complete(Exception? exception = null) => inner.Complete(exception);

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _flushes);
        return inner.FlushAsync(cancellationToken);
    }
}

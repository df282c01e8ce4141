using System.IO.Pipelines;

namespace Replicator.Protocol.Tests.Nbd.Support;

/// <summary>
/// A duplex pipe that passes everything on, except that the first cancel of a pending read or flush waits until
/// the test lets it go: it holds a thread that is ending the connection at the point where a loaded machine
/// might preempt it, so whatever races that thread can be run to completion first.
/// </summary>
internal sealed class HeldCancelPipe : IDuplexPipe
{
    private readonly ManualResetEventSlim _release = new();
    private readonly TaskCompletionSource _held = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _cancels;

    public HeldCancelPipe(IDuplexPipe inner)
    {
        Input = new Reader(inner.Input, this);
        Output = new Writer(inner.Output, this);
    }

    public PipeReader Input { get; }

    public PipeWriter Output { get; }

    /// <summary>Completes once a thread is held in its first cancel.</summary>
    public Task Held => _held.Task;

    public void Release() => _release.Set();

    private void OnCancel()
    {
        if (Interlocked.Increment(ref _cancels) == 1)
        {
            _held.TrySetResult();
            _release.Wait(TimeSpan.FromSeconds(30));
        }
    }

    private sealed class Reader(PipeReader inner, HeldCancelPipe pipe) : PipeReader
    {
        public override void AdvanceTo(SequencePosition consumed) => inner.AdvanceTo(consumed);

        public override void AdvanceTo(SequencePosition consumed, SequencePosition examined) => inner.AdvanceTo(consumed, examined);

        public override void CancelPendingRead()
        {
            pipe.OnCancel();
            inner.CancelPendingRead();
        }

        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);

        public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default) => inner.ReadAsync(cancellationToken);

        public override bool TryRead(out ReadResult result) => inner.TryRead(out result);
    }

    private sealed class Writer(PipeWriter inner, HeldCancelPipe pipe) : PipeWriter
    {
        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

        public override long UnflushedBytes => inner.UnflushedBytes;

        public override void Advance(int bytes) => inner.Advance(bytes);

        public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);

        public override void CancelPendingFlush()
        {
            pipe.OnCancel();
            inner.CancelPendingFlush();
        }

        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) => inner.FlushAsync(cancellationToken);
    }
}

namespace Replicator.Protocol.Tests;

public sealed class SendBatchTests
{
    [Fact]
    public void Flushes_put_off_in_a_batch_run_once_each_when_the_outermost_batch_ends()
    {
        var first = new Connection();
        var second = new Connection();

        SendBatch.Enter();
        SendBatch.Current!.Defer(first);
        SendBatch.Enter();
        SendBatch.Current!.Defer(second);
        SendBatch.Exit();
        Assert.Equal((0, 0), (first.Flushes, second.Flushes));
        SendBatch.Exit();

        Assert.Equal((1, 1), (first.Flushes, second.Flushes));
        Assert.Null(SendBatch.Current);
    }

    [Fact]
    public void A_flush_that_opens_a_batch_of_its_own_does_not_run_the_others_twice()
    {
        var inner = new Connection();
        var others = Enumerable.Range(0, 3).Select(_ => new Connection()).ToArray();
        var reentering = new Connection(() =>
        {
            SendBatch.Enter();
            SendBatch.Current!.Defer(inner);
            SendBatch.Exit();
        });

        SendBatch.Enter();
        foreach (var connection in others)
        {
            SendBatch.Current!.Defer(connection);
        }

        SendBatch.Current!.Defer(reentering);
        SendBatch.Exit();

        Assert.All(others.Append(reentering).Append(inner), c => Assert.Equal(1, c.Flushes));
    }

    [Fact]
    public void A_batch_belongs_to_its_thread()
    {
        SendBatch.Enter();
        try
        {
            Assert.NotNull(SendBatch.Current);
            var seenElsewhere = SendBatch.Current;
            var other = new Thread(() => seenElsewhere = SendBatch.Current);
            other.Start();
            other.Join();
            Assert.Null(seenElsewhere);
        }
        finally
        {
            SendBatch.Exit();
        }
    }

    private sealed class Connection(Action? onFlush = null) : IDeferredFlush
    {
        public int Flushes { get; private set; }

        public void FlushDeferred()
        {
            Flushes++;
            onFlush?.Invoke();
        }
    }
}

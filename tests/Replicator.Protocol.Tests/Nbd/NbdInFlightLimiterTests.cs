using Replicator.Protocol.Nbd;

namespace Replicator.Protocol.Tests.Nbd;

public class NbdInFlightLimiterTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task TheRequestLimitHoldsTheNextRequestUntilOneIsReleased()
    {
        var limiter = new NbdInFlightLimiter(maxRequests: 2, maxBytes: 1000);
        await limiter.AcquireAsync(0);
        await limiter.AcquireAsync(0);

        var third = limiter.AcquireAsync(0).AsTask();
        Assert.False(third.IsCompleted);

        limiter.Release(0);
        await third.WaitAsync(Timeout);
        Assert.Equal(2, limiter.Count);
    }

    [Fact]
    public async Task TheByteLimitHoldsTheNextRequestUntilBytesAreReleased()
    {
        var limiter = new NbdInFlightLimiter(maxRequests: 10, maxBytes: 1000);
        await limiter.AcquireAsync(600);
        await limiter.AcquireAsync(300);

        var third = limiter.AcquireAsync(600).AsTask();
        Assert.False(third.IsCompleted);
        Assert.False(limiter.Release(300));
        Assert.False(third.IsCompleted);

        Assert.False(limiter.Release(600));
        await third.WaitAsync(Timeout);
        Assert.Equal(1, limiter.Count);
    }

    [Fact]
    public async Task ARequestLargerThanTheByteLimitIsAdmittedAlone()
    {
        var limiter = new NbdInFlightLimiter(maxRequests: 10, maxBytes: 1000);

        await limiter.AcquireAsync(5000).AsTask().WaitAsync(Timeout);

        Assert.False(limiter.AcquireAsync(1).IsCompleted);
    }

    [Fact]
    public async Task ReleaseTellsWhenTheLastRequestLeft()
    {
        var limiter = new NbdInFlightLimiter(maxRequests: 10, maxBytes: 1000);
        await limiter.AcquireAsync(1);
        await limiter.AcquireAsync(1);

        Assert.False(limiter.Release(1));
        Assert.True(limiter.Release(1));
        Assert.Equal(0, limiter.Count);
    }

    [Fact]
    public async Task TheWaiterIsReusedAcrossWaits()
    {
        var limiter = new NbdInFlightLimiter(maxRequests: 1, maxBytes: 1000);
        await limiter.AcquireAsync(0);

        for (var i = 0; i < 3; i++)
        {
            var next = limiter.AcquireAsync(0).AsTask();
            Assert.False(next.IsCompleted);
            limiter.Release(0);
            await next.WaitAsync(Timeout);
        }

        Assert.Equal(1, limiter.Count);
    }

    [Fact]
    public async Task CancelFailsTheWaitingAndEveryLaterAcquire()
    {
        var limiter = new NbdInFlightLimiter(maxRequests: 1, maxBytes: 1000);
        await limiter.AcquireAsync(0);

        var waiting = limiter.AcquireAsync(0).AsTask();
        limiter.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(Timeout));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => limiter.AcquireAsync(0).AsTask());
        Assert.Equal(1, limiter.Count);
    }
}

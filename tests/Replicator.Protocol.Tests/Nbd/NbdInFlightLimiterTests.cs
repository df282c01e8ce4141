using Replicator.Protocol.Nbd;

namespace Replicator.Protocol.Tests.Nbd;

public class NbdInFlightLimiterTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task TheRequestLimitHoldsTheNextRequestUntilOneIsReleased()
    {
        var limiter = new NbdInFlightLimiter(maxRequests: 2, maxBytes: 1000);
        await limiter.AcquireAsync(0, CancellationToken.None);
        await limiter.AcquireAsync(0, CancellationToken.None);

        var third = limiter.AcquireAsync(0, CancellationToken.None).AsTask();
        Assert.False(third.IsCompleted);

        limiter.Release(0);
        await third.WaitAsync(Timeout);
        Assert.Equal(2, limiter.Count);
    }

    [Fact]
    public async Task TheByteLimitHoldsTheNextRequestUntilBytesAreReleased()
    {
        var limiter = new NbdInFlightLimiter(maxRequests: 10, maxBytes: 1000);
        await limiter.AcquireAsync(600, CancellationToken.None);

        var second = limiter.AcquireAsync(600, CancellationToken.None).AsTask();
        Assert.False(second.IsCompleted);

        Assert.True(limiter.Release(600));
        await second.WaitAsync(Timeout);
    }

    [Fact]
    public async Task ARequestLargerThanTheByteLimitIsAdmittedAlone()
    {
        var limiter = new NbdInFlightLimiter(maxRequests: 10, maxBytes: 1000);

        await limiter.AcquireAsync(5000, CancellationToken.None).AsTask().WaitAsync(Timeout);

        Assert.False(limiter.AcquireAsync(1, CancellationToken.None).IsCompleted);
    }

    [Fact]
    public async Task WhenIdleCompletesWithTheLastRelease()
    {
        var limiter = new NbdInFlightLimiter(maxRequests: 10, maxBytes: 1000);
        Assert.True(limiter.WhenIdleAsync().IsCompleted);
        await limiter.AcquireAsync(1, CancellationToken.None);
        await limiter.AcquireAsync(1, CancellationToken.None);

        var idle = limiter.WhenIdleAsync();
        Assert.False(limiter.Release(1));
        Assert.False(idle.IsCompleted);
        Assert.True(limiter.Release(1));

        await idle.WaitAsync(Timeout);
    }

    [Fact]
    public async Task AWaitingAcquireCanBeCancelled()
    {
        var limiter = new NbdInFlightLimiter(maxRequests: 1, maxBytes: 1000);
        await limiter.AcquireAsync(0, CancellationToken.None);
        using var cancellation = new CancellationTokenSource();

        var waiting = limiter.AcquireAsync(0, cancellation.Token).AsTask();
        await cancellation.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(Timeout));
        Assert.Equal(1, limiter.Count);
    }
}

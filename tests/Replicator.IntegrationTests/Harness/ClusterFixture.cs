namespace Replicator.IntegrationTests.Harness;

/// <summary>One <c>cluster up</c> shared by the tests of a class; each test makes its own volumes and leaves both nodes running.</summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    private int _next;

    public TestCluster Cluster { get; private set; } = null!;

    public async Task InitializeAsync() => Cluster = await TestCluster.StartAsync();

    public async Task DisposeAsync() => await Cluster.DisposeAsync();

    public Task<string> NewVolumeAsync(string size = "256M", string? preferred = null) =>
        Cluster.CreateVolumeAsync($"r{Interlocked.Increment(ref _next)}", size, preferred);
}

namespace Replicator.IntegrationTests.Harness;

/// <summary>One node shared by the tests of a class; each test makes its own volumes on it.</summary>
public sealed class NodeFixture : IAsyncLifetime
{
    private int _next;

    public TestNode Node { get; private set; } = null!;

    public async Task InitializeAsync() => Node = await TestNode.StartAsync("16G");

    public async Task DisposeAsync() => await Node.DisposeAsync();

    /// <summary>Creates a fresh volume with a unique name.</summary>
    public async Task<string> NewVolumeAsync(string size = "64M") =>
        await Node.CreateVolumeAsync($"t{Interlocked.Increment(ref _next)}", size);
}

/// <summary>
/// Integration tests start real processes and share two cores: they run one class at a time,
/// so timing-sensitive cases (keepalives, failover) are not starved by a neighbour.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class IntegrationCollection
{
    public const string Name = "integration";
}

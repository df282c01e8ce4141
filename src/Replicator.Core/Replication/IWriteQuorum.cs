namespace Replicator.Core.Replication;

/// <summary>
/// Decides whether a replica that has lost its peer may keep acknowledging writes alone
/// (invariant 5). Without a witness every node may (and a split brain is detected on reconnect);
/// with one, only the node holding the witness's vote for the volume may.
/// </summary>
internal interface IWriteQuorum
{
    /// <summary>
    /// Returns when this node may acknowledge writes to <paramref name="volume"/> that its peer lacks,
    /// holding the data set <paramref name="writingAs"/> from then on; throws a
    /// <see cref="Devices.BlockDeviceException"/> with <see cref="Devices.StorageError.NotPermitted"/> when it may not.
    /// </summary>
    ValueTask EnsureMayWriteAloneAsync(ReplicatedVolume volume, GenerationIds writingAs, CancellationToken cancellationToken);

    /// <summary>
    /// Returns when this node may serve reads of <paramref name="volume"/> without its peer: only a
    /// node that may write alone knows no other node writes what it would read, so the rule is the
    /// same, claimed for the data set it holds now. Throws a <see cref="Devices.BlockDeviceException"/>
    /// with <see cref="Devices.StorageError.NotPermitted"/> when it may not.
    /// </summary>
    ValueTask EnsureMayServeAloneAsync(ReplicatedVolume volume, CancellationToken cancellationToken);

    /// <summary>The volume is paired and in sync again: a vote held for it is no longer needed.</summary>
    void Release(ReplicatedVolume volume);

    /// <summary>
    /// <paramref name="volume"/> was just created here while the peer could not take its replica: no other node
    /// holds data of it, so its fresh data set is recorded as the pair's, and this node may write it alone until
    /// the peer has it. A failure is logged; writes alone are then refused until the pair was in sync once.
    /// </summary>
    Task RecordCreatedAloneAsync(ReplicatedVolume volume, CancellationToken cancellationToken);

    /// <summary>How this node decides, for status output.</summary>
    string Describe();
}

/// <summary>No witness: a node that loses its peer keeps writing; both sides writing is detected as a split brain later.</summary>
internal sealed class NoWitnessQuorum : IWriteQuorum
{
    public static NoWitnessQuorum Instance { get; } = new();

    public ValueTask EnsureMayWriteAloneAsync(ReplicatedVolume volume, GenerationIds writingAs, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask EnsureMayServeAloneAsync(ReplicatedVolume volume, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public void Release(ReplicatedVolume volume)
    {
    }

    public Task RecordCreatedAloneAsync(ReplicatedVolume volume, CancellationToken cancellationToken) => Task.CompletedTask;

    public string Describe() => "no witness: each node keeps writing when it loses its peer (a split brain is possible, and is detected on reconnect)";
}

using Microsoft.Extensions.Logging.Abstractions;
using Replicator.Core.Devices;
using Replicator.Core.Pool;
using Replicator.Core.Replication;
using Replicator.Core.Storage;
using Replicator.Core.Volumes;

namespace Replicator.Core.Tests.Replication.Support;

/// <summary>
/// One node's half of a volume: its own pool over a <see cref="MemoryBackingStore"/>, its own
/// thin volume and replica files in a temp directory, and the <see cref="ReplicatedVolume"/> over them.
/// </summary>
internal sealed class ReplicaSide : IDisposable
{
    public const int UnitSize = 64 << 10;
    private const long StoreCapacity = 64L << 20;

    private readonly TempDirectory _directory = new();
    private readonly CallLog _received = new();
    private bool _disposed;

    /// <param name="empty">The replica holds no meaningful data (a new or replaced disk), as the node creates one for a volume only the peer has.</param>
    /// <param name="earlierPromise">What the node promised its peer before this process started.</param>
    public ReplicaSide(string name, string peerName, Guid volumeId, long size, bool empty = false, PeerReadLease? earlierPromise = null)
    {
        Name = name;
        Store = new ObservedBackingStore(new MemoryBackingStore(StoreCapacity));
        Checksums = new MemoryBackingStore(BlockChecksumStore.FileLength(StoreCapacity));
        Pool = StoragePool.OpenWithStores(Directory.CreateDirectory(Path.Combine(_directory.Path, "pool")).FullName, [Store], UnitSize, NullLogger.Instance, [Checksums]);
        Thin = Pool.CreateVolume("vol0", size, volumeId);
        Replica = ReplicaStore.Create(Path.Combine(_directory.Path, "replica"), volumeId, size,
            empty ? GenerationIds.EmptyReplica : GenerationIds.NewVolume,
            empty ? ReplicaDiskState.Inconsistent : ReplicaDiskState.UpToDate,
            ReplicaFlags.None, NullLogger.Instance);
        Volume = new ReplicatedVolume(Thin, Replica, Quorum, peerName, NullLogger.Instance, earlierPromise) { LocalName = name };
    }

    public string Name { get; }

    public Guid NodeId { get; } = Guid.NewGuid();

    public ObservedBackingStore Store { get; }

    /// <summary>The block checksums of <see cref="Store"/>.</summary>
    public MemoryBackingStore Checksums { get; }

    public StoragePool Pool { get; }

    public ThinVolume Thin { get; }

    public ReplicaStore Replica { get; }

    public ReplicatedVolume Volume { get; }

    public TestQuorum Quorum { get; } = new();

    /// <summary>Runs on this side before it handles each request from the peer: delay, fail or hold it.</summary>
    public Func<PeerRequest, CancellationToken, ValueTask>? Incoming { get; set; }

    /// <summary>What this side received from its peer.</summary>
    public CallLog Received => _received;

    /// <summary>This side's session with the peer while paired.</summary>
    public ReplicationSession? Session { get; set; }

    public void Note(PeerRequest request) => _received.Add(request);

    /// <summary>Holds every request of <paramref name="call"/> at a new gate.</summary>
    public Gate Hold(PeerCall call, int passFirst = 0)
    {
        var gate = new Gate(passFirst);
        Incoming = (request, t) => request.Call == call ? gate.PassAsync(t) : ValueTask.CompletedTask;
        return gate;
    }

    /// <summary>Refuses every request of <paramref name="call"/> as a failing disk would.</summary>
    public void Refuse(PeerCall call) =>
        Incoming = (request, _) => request.Call == call
            ? throw new BlockDeviceException(StorageError.Io, $"{Name}: injected disk failure")
            : ValueTask.CompletedTask;

    public async Task<byte[]> ReadLocalAsync(long offset, int length)
    {
        var buffer = new byte[length];
        await Thin.ReadAsync(offset, buffer);
        return buffer;
    }

    /// <summary>Where the data of the volume's allocation unit <paramref name="unit"/> lives in the backing store, as the pool maps it.</summary>
    public long StoreOffsetOfUnit(long unit) =>
        Thin.State.Map.TryGet(unit, out var extent)
            ? Pool.Locate(extent).Offset
            : throw new InvalidOperationException($"unit {unit} of {Name} is not mapped (write to it first)");

    /// <summary>Flips one byte of this replica's data in its backing store, under the volume and its checksums, as a failing disk would.</summary>
    public void Corrupt(long volumeOffset)
    {
        var at = StoreOffsetOfUnit(volumeOffset / UnitSize) + (volumeOffset % UnitSize);
        var value = new byte[1];
        Store.Inner.Read(at, value);
        value[0] ^= 0xFF;
        Store.Inner.Write(at, value);
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Volume.Dispose();
        Pool.Dispose();
        _directory.Dispose();
    }
}

/// <summary>A quorum the test switches: by default a node may write alone; refusing, it answers as a lost witness vote would.</summary>
internal sealed class TestQuorum : IWriteQuorum
{
    public bool Refuses { get; set; }

    public ValueTask EnsureMayWriteAloneAsync(ReplicatedVolume volume, GenerationIds writingAs, CancellationToken cancellationToken) =>
        Refuses
            ? throw new BlockDeviceException(StorageError.NotPermitted, $"volume '{volume.Name}': this node does not hold the witness's vote")
            : ValueTask.CompletedTask;

    public ValueTask EnsureMayServeAloneAsync(ReplicatedVolume volume, CancellationToken cancellationToken) =>
        Refuses
            ? throw new BlockDeviceException(StorageError.NotPermitted, $"volume '{volume.Name}': this node does not hold the witness's vote")
            : ValueTask.CompletedTask;

    public void Release(ReplicatedVolume volume)
    {
    }

    public string Describe() => Refuses ? "test: refuses" : "test: allows";
}

/// <summary>A backing store that lets a test look at the world at the moment data is about to change.</summary>
internal sealed class ObservedBackingStore(MemoryBackingStore inner) : IBackingStore
{
    /// <summary>Called before every write and discard reaches the store.</summary>
    public Action? Changing { get; set; }

    public MemoryBackingStore Inner => inner;

    public long Length => inner.Length;

    public void Read(long offset, Span<byte> destination) => inner.Read(offset, destination);

    public void Write(long offset, ReadOnlySpan<byte> source)
    {
        Changing?.Invoke();
        inner.Write(offset, source);
    }

    public void Discard(long offset, long length)
    {
        Changing?.Invoke();
        inner.Discard(offset, length);
    }

    public void Flush() => inner.Flush();

    public void Dispose() => inner.Dispose();
}

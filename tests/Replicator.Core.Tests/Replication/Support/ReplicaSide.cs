using Microsoft.Extensions.Logging.Abstractions;
using Replicator.Core.Devices;
using Replicator.Core.Pool;
using Replicator.Core.Replication;
using Replicator.Core.Storage;
using Replicator.Core.Tests.Support.Faults;
using Replicator.Core.Volumes;

namespace Replicator.Core.Tests.Replication.Support;

/// <summary>
/// One node's half of a volume: its own pool, thin volume and replica files in a
/// <see cref="FaultFileSystem"/>, and the <see cref="ReplicatedVolume"/> over them.
/// </summary>
internal sealed class ReplicaSide : IDisposable
{
    public const int UnitSize = 64 << 10;
    private const long StoreCapacity = 64L << 20;
    private const string PoolDirectory = "/pool";

    private readonly CallLog _received = new();
    private bool _disposed;

    /// <param name="empty">The replica holds no meaningful data (a new or replaced disk), as the node creates one for a volume only the peer has.</param>
    /// <param name="earlierPromise">What the node promised its peer before this process started.</param>
    /// <param name="peerName">The peer's name; null for a node without a peer.</param>
    public ReplicaSide(string name, string? peerName, Guid volumeId, long size, bool empty = false, PeerReadLease? earlierPromise = null)
    {
        Name = name;
        Pool = StoragePool.Create(Files, PoolDirectory, new PoolOptions { FileCapacity = StoreCapacity, ExtentSize = UnitSize }, NullLogger.Instance);
        PoolData = Files.OpenFile(Path.Combine(PoolDirectory, "data-000.img"), FileOpenMode.Open);
        Thin = Pool.CreateVolume("vol0", size, volumeId);
        Replica = ReplicaStore.Create(Files, "/replica", volumeId, size,
            empty ? GenerationIds.EmptyReplica : GenerationIds.NewVolume,
            empty ? ReplicaDiskState.Inconsistent : ReplicaDiskState.UpToDate,
            ReplicaFlags.None, NullLogger.Instance);
        Volume = new ReplicatedVolume(Thin, Replica, Quorum, peerName, NullLogger.Instance, earlierPromise) { LocalName = name };
    }

    public string Name { get; }

    public Guid NodeId { get; } = Guid.NewGuid();

    /// <summary>Every file of this side: cut its power, fail its writes, watch it change.</summary>
    public FaultFileSystem Files { get; } = new();

    /// <summary>Called before every write and discard reaches the pool's data file.</summary>
    public Action? DataChanging
    {
        set => Files.Changing = value is null ? null : change =>
        {
            if (change.Path == PoolData.Path)
            {
                value();
            }
        };
    }

    /// <summary>The pool's data file, read and written around the pool (to corrupt it, or look for data).</summary>
    public IStorageFile PoolData { get; }

    /// <summary>Injects errors into the pool's data file.</summary>
    public PoolDataFaults PoolDisk => new(Files, PoolData.Path);

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
    public ReplicationSession? Session => Volume.Session;

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

    /// <summary>Where the data of the volume's allocation unit <paramref name="unit"/> lives in the pool's data file, as the pool maps it.</summary>
    public long StoreOffsetOfUnit(long unit) =>
        Thin.State.Map.TryGet(unit, out var extent)
            ? Pool.Locate(extent).Offset
            : throw new InvalidOperationException($"unit {unit} of {Name} is not mapped (write to it first)");

    /// <summary>Flips one byte of this replica's data in its pool's data file, under the volume and its checksums, as a failing disk would.</summary>
    public void Corrupt(long volumeOffset)
    {
        var at = StoreOffsetOfUnit(volumeOffset / UnitSize) + (volumeOffset % UnitSize);
        var value = new byte[1];
        PoolData.Read(at, value);
        value[0] ^= 0xFF;
        PoolData.Write(at, value);
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Files.ClearFaults();
        Volume.Dispose();
        Pool.Dispose();
        PoolData.Dispose();
    }
}

/// <summary>A quorum the test switches: by default a node may write alone; refusing, it answers as a lost witness vote would.</summary>
internal sealed class TestQuorum : IWriteQuorum
{
    private int _claims;

    public bool Refuses { get; set; }

    /// <summary>How often this node asked to write alone.</summary>
    public int Claims => Volatile.Read(ref _claims);

    public ValueTask EnsureMayWriteAloneAsync(ReplicatedVolume volume, GenerationIds writingAs, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _claims);
        return Refuses
            ? throw new BlockDeviceException(StorageError.NotPermitted, $"volume '{volume.Name}': this node does not hold the witness's vote")
            : ValueTask.CompletedTask;
    }

    public ValueTask EnsureMayServeAloneAsync(ReplicatedVolume volume, CancellationToken cancellationToken) =>
        Refuses
            ? throw new BlockDeviceException(StorageError.NotPermitted, $"volume '{volume.Name}': this node does not hold the witness's vote")
            : ValueTask.CompletedTask;

    public void Release(ReplicatedVolume volume)
    {
    }

    public Task RecordCreatedAloneAsync(ReplicatedVolume volume, CancellationToken cancellationToken) => Task.CompletedTask;

    public string Describe() => Refuses ? "test: refuses" : "test: allows";
}

/// <summary>The calls of the pool's data file, for injecting faults into them.</summary>
internal enum StoreCall
{
    Read,

    /// <summary>Writes and discards.</summary>
    Write,
    Flush,
}

/// <summary>
/// Fails calls on one side's pool data file as a failing disk (EIO) or a full file system (ENOSPC)
/// would, through the side's <see cref="FaultFileSystem"/> (an <see cref="IOException"/> whose
/// HResult is the errno; a failed fsync forgets the unsynced pages, as Linux does).
/// </summary>
internal sealed class PoolDataFaults(FaultFileSystem files, string path)
{
    public const int EIO = Errno.EIO;
    public const int ENOSPC = Errno.ENOSPC;

    /// <summary>Fails the next <paramref name="count"/> calls of <paramref name="call"/> (<see cref="int.MaxValue"/>: until <see cref="Heal"/>).</summary>
    public void Fail(StoreCall call, int errno, int count = 1) =>
        files.FailNext(call switch
        {
            StoreCall.Read => IoOperation.Read,
            StoreCall.Write => IoOperation.Write,
            _ => IoOperation.Flush,
        }, errno, p => p == path, count);

    /// <summary>The disk works again (an admin repaired it, or space was freed).</summary>
    public void Heal() => files.ClearFaults();
}

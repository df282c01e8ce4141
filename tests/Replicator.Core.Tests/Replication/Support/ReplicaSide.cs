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
    /// <param name="peerName">The peer's name; null for a node without a peer.</param>
    public ReplicaSide(string name, string? peerName, Guid volumeId, long size, bool empty = false, PeerReadLease? earlierPromise = null)
    {
        Name = name;
        Store = new ObservedBackingStore(new MemoryBackingStore(StoreCapacity));
        Pool = StoragePool.OpenWithStores(Directory.CreateDirectory(Path.Combine(_directory.Path, "pool")).FullName, [Store], UnitSize, NullLogger.Instance);
        Thin = Pool.CreateVolume("vol0", size, volumeId);
        Replica = ReplicaStore.Create(Path.Combine(_directory.Path, "replica"), volumeId, size,
            empty ? GenerationIds.EmptyReplica : GenerationIds.NewVolume,
            empty ? ReplicaDiskState.Inconsistent : ReplicaDiskState.UpToDate,
            ReplicaFlags.None, NullLogger.Instance);
        Volume = new ReplicatedVolume(Thin, Replica, Quorum, peerName, NullLogger.Instance, earlierPromise);
    }

    public string Name { get; }

    public Guid NodeId { get; } = Guid.NewGuid();

    public ObservedBackingStore Store { get; }

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

    /// <summary>Where the data of the volume's allocation unit <paramref name="unit"/> lives in the backing store (found by its first bytes).</summary>
    public async Task<long> StoreOffsetOfUnitAsync(long unit)
    {
        var head = await ReadLocalAsync(unit * UnitSize, 64);
        var candidate = new byte[head.Length];
        for (var offset = 0L; offset < Store.Length; offset += UnitSize)
        {
            Store.Read(offset, candidate);
            if (candidate.AsSpan().SequenceEqual(head))
            {
                return offset;
            }
        }

        throw new InvalidOperationException($"unit {unit} of {Name} is not in its store (write distinct data to it first)");
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Store.Heal();
        Volume.Dispose();
        Pool.Dispose();
        _directory.Dispose();
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

    public string Describe() => Refuses ? "test: refuses" : "test: allows";
}

/// <summary>The calls of a backing store, for injecting faults into them.</summary>
internal enum StoreCall
{
    Read,
    Write,
    Flush,
}

/// <summary>
/// A backing store that lets a test look at the world at the moment data is about to change, and fail
/// calls as a failing disk (EIO) or a full file system (ENOSPC) would: with the <see cref="IOException"/>
/// the file system gives, whose HResult is the errno.
/// </summary>
internal sealed class ObservedBackingStore(MemoryBackingStore inner) : IBackingStore
{
    public const int EIO = 5;
    public const int ENOSPC = 28;

    private readonly Lock _lock = new();
    private readonly Dictionary<StoreCall, (int Errno, int Remaining)> _faults = [];

    /// <summary>Called before every write and discard reaches the store.</summary>
    public Action? Changing { get; set; }

    public MemoryBackingStore Inner => inner;

    public long Length => inner.Length;

    /// <summary>Fails the next <paramref name="count"/> calls of <paramref name="call"/> (<see cref="int.MaxValue"/>: until <see cref="Heal"/>).</summary>
    public void Fail(StoreCall call, int errno, int count = 1)
    {
        lock (_lock)
        {
            _faults[call] = (errno, count);
        }
    }

    /// <summary>The disk works again (an admin repaired it, or space was freed).</summary>
    public void Heal()
    {
        lock (_lock)
        {
            _faults.Clear();
        }
    }

    public void Read(long offset, Span<byte> destination)
    {
        ThrowIfFaulted(StoreCall.Read);
        inner.Read(offset, destination);
    }

    public void Write(long offset, ReadOnlySpan<byte> source)
    {
        Changing?.Invoke();
        ThrowIfFaulted(StoreCall.Write);
        inner.Write(offset, source);
    }

    public void Discard(long offset, long length)
    {
        Changing?.Invoke();
        ThrowIfFaulted(StoreCall.Write);
        inner.Discard(offset, length);
    }

    public void Flush()
    {
        ThrowIfFaulted(StoreCall.Flush);
        inner.Flush();
    }

    public void Dispose() => inner.Dispose();

    private void ThrowIfFaulted(StoreCall call)
    {
        lock (_lock)
        {
            if (!_faults.TryGetValue(call, out var fault))
            {
                return;
            }

            if (fault.Remaining != int.MaxValue)
            {
                if (fault.Remaining <= 1)
                {
                    _faults.Remove(call);
                }
                else
                {
                    _faults[call] = (fault.Errno, fault.Remaining - 1);
                }
            }

            throw new IOException($"injected: {(fault.Errno == ENOSPC ? "no space left on device" : "input/output error")} on {call.ToString().ToLowerInvariant()}", fault.Errno);
        }
    }
}

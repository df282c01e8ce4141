using Replicator.Core.Devices;
using Replicator.Core.Pool;
using Replicator.Core.Replication;

namespace Replicator.Core.Tests.Support.Faults;

/// <summary>
/// Random changes to a <see cref="SingleNode"/> — writes (some FUA), flushes, trims, write-zeroes
/// with and without NO_HOLE, volume create, resize and delete, clean restarts — each recorded in a
/// <see cref="VolumeModel"/> per volume, so that after a power loss or an I/O error the engine's
/// state can be checked (<see cref="EngineWorkload.VerifyAfterRestart"/>). Deterministic for a seed.
/// </summary>
internal sealed partial class EngineWorkload
{
    public const int ExtentSize = 64 << 10;
    private const long PoolCapacity = 64L * ExtentSize;
    private const long CheckpointEvery = 2048;
    private const int MaxVolumes = 3;

    /// <summary>Volumes stop growing here: under the 64 extents their activity logs hold, so none is evicted (finding 3 of issue 13).</summary>
    private const long MaxVolumeSize = 32L * ExtentSize;

    private readonly Random _random;
    private readonly Dictionary<Guid, VolumeModel> _models = [];
    private readonly Queue<string> _recent = new();
    private InFlight? _inFlight;

    /// <summary>Volume operations that failed and may or may not have happened: the next restart settles them.</summary>
    private readonly List<InFlight> _undecided = [];
    private int _nextValue = 1;
    private int _nextName = 1;

    /// <param name="peerName">The node's peer (away the whole time), or null for a node without one.</param>
    public EngineWorkload(int seed, FaultFileSystem files, string? peerName = "peer")
    {
        Seed = seed;
        PeerName = peerName;
        _random = new Random(seed);
        Files = files;
        Node = SingleNode.Open(files, Options, CheckpointEvery, PeerName);
        CreateVolume();
    }

    public static PoolOptions Options { get; } = new() { FileCapacity = PoolCapacity, ExtentSize = ExtentSize };

    public int Seed { get; }

    public string? PeerName { get; }

    public FaultFileSystem Files { get; }

    public SingleNode Node { get; private set; }

    public Random Random => _random;

    /// <summary>The last operations, for a failure message that lets a person follow what happened.</summary>
    public string History => string.Join(Environment.NewLine, _recent);

    /// <summary>Runs one random operation. Returns what became of it; a cut power propagates as <see cref="PowerCutException"/>.</summary>
    public async Task<Outcome> StepAsync()
    {
        var roll = _random.Next(100);
        if (_models.Count == 0 || (roll < 3 && _models.Count < MaxVolumes))
        {
            return Run("create volume", () => CreateVolume());
        }

        var model = _models.Values.ElementAt(_random.Next(_models.Count));
        var volume = Node.Volumes[model.Id];
        return roll switch
        {
            < 40 => await WriteAsync(model, volume, fua: _random.Next(10) == 0),
            < 50 => await ChangeAsync("flush", model, volume, 0, 0, 0, () => volume.FlushAsync(), flush: true),
            < 60 => await ZeroAsync("trim", model, volume, (o, l, f) => volume.TrimAsync(o, l, f)),
            < 67 => await ZeroAsync("write-zeroes", model, volume, (o, l, f) => volume.WriteZeroesAsync(o, l, f)),
            < 74 => await ZeroAsync("write-zeroes NO_HOLE", model, volume, (o, l, f) => volume.WriteZeroesAsync(o, l, f | IoFlags.NoHole)),
            < 78 when model.Size < MaxVolumeSize => Run($"resize {model.Name}", () => Resize(model, volume)),
            < 80 => Run($"delete {model.Name}", () => Delete(model, volume)),
            < 82 => Run("clean restart", Restart),
            _ => await ReadAsync(model, volume),
        };
    }

    /// <summary>An fsync failed inside the last operation: from now on a flush only adds to what may survive (see <see cref="VolumeModel"/>).</summary>
    public void FlushFailed()
    {
        foreach (var model in _models.Values)
        {
            model.FlushFailed();
        }
    }

    /// <summary>Notes that the power was cut during the operation in flight.</summary>
    public void PowerWasCut() => Note("-- power cut");

    /// <summary>
    /// Creates, resizes or deletes a volume. When that fails, the pool may have done it or not (its
    /// journal took the record, the flush after it failed): the model takes what the engine shows
    /// now, and the next restart settles what is durable.
    /// </summary>
    private Outcome CreateVolume() => Administer(new InFlight.Creating($"v{_nextName++}", (long)_random.Next(4, 17) * ExtentSize), () =>
    {
        var creating = (InFlight.Creating)_inFlight!;
        var volume = Node.CreateVolume(creating.Name, creating.Size);
        _models[volume.Id] = new VolumeModel(volume.Id, creating.Name, creating.Size);
    });

    private Outcome Resize(VolumeModel model, ReplicatedVolume volume) =>
        Administer(new InFlight.Resizing(model.Id, model.Size, model.Size + ((long)_random.Next(1, 5) * ExtentSize)), () =>
        {
            var size = ((InFlight.Resizing)_inFlight!).Size;
            Node.ResizeVolume(volume, size);
            model.Resize(size);
        });

    private Outcome Delete(VolumeModel model, ReplicatedVolume volume) => Administer(new InFlight.Deleting(model), () =>
    {
        Node.DeleteVolume(volume);
        _models.Remove(model.Id);
    });

    private Outcome Administer(InFlight operation, Action run)
    {
        _inFlight = operation;
        try
        {
            run();
        }
        catch (Exception e) when (e is not PowerCutException)
        {
            _inFlight = null;
            _undecided.Add(operation);
            switch (operation)
            {
                case InFlight.Resizing resizing when Node.Volumes.TryGetValue(resizing.Volume, out var resized):
                    _models[resizing.Volume].Resize(resized.Size);
                    break;
                case InFlight.Deleting deleting when !Node.Volumes.ContainsKey(deleting.Model.Id):
                    _models.Remove(deleting.Model.Id);
                    break;
            }

            throw;
        }

        _inFlight = null;
        return Outcome.Done;
    }

    /// <summary>
    /// A clean stop and start. When the stop fails, the process exits anyway (as if killed); when the
    /// start fails, the admin clears the fault and starts it again. Either failure is the outcome.
    /// </summary>
    private Outcome Restart()
    {
        Exception? failure = null;
        try
        {
            Node.Close();
        }
        catch (Exception e) when (e is not PowerCutException)
        {
            failure = e;
            Files.KillProcess();
        }

        try
        {
            Node = SingleNode.Open(Files, Options, CheckpointEvery, PeerName);
        }
        catch (Exception e) when (e is not PowerCutException)
        {
            failure ??= e;
            Note($"   start failed: {e.GetType().Name}: {e.Message}");
            Files.KillProcess();
            Files.ClearFaults();
            Node = SingleNode.Open(Files, Options, CheckpointEvery, PeerName);
        }

        return failure is null ? Outcome.Done : Outcome.Failed(failure);
    }

    private Task<Outcome> WriteAsync(VolumeModel model, ReplicatedVolume volume, bool fua)
    {
        var (offset, length) = PickRange(model, maxSectors: 128);
        var value = _nextValue++;
        var data = VolumeModel.Contents(value, offset, (int)length);
        return ChangeAsync(fua ? "write FUA" : "write", model, volume, offset, length, value,
            () => volume.WriteAsync(offset, data, fua ? IoFlags.Fua : IoFlags.None), fua: fua);
    }

    private Task<Outcome> ZeroAsync(string what, VolumeModel model, ReplicatedVolume volume, Func<long, long, IoFlags, ValueTask> change)
    {
        // Half of them cover whole extents, which the pool unmaps; the rest cut into extents at both ends.
        var (offset, length) = PickRange(model, maxSectors: _random.Next(2) == 0 ? 256 : 1024);
        var fua = _random.Next(10) == 0;
        return ChangeAsync(what + (fua ? " FUA" : ""), model, volume, offset, length, 0, () => change(offset, length, fua ? IoFlags.Fua : IoFlags.None), fua: fua);
    }

    private async Task<Outcome> ChangeAsync(string what, VolumeModel model, ReplicatedVolume volume, long offset, long length, int value,
        Func<ValueTask> change, bool fua = false, bool flush = false)
    {
        Note($"{what} {model.Name} [{offset}, +{length}) = {value}");
        _inFlight = flush ? new InFlight.Flushing() : new InFlight.Changing(model.Id, offset, length, value);
        try
        {
            await change();
        }
        catch (Exception e) when (e is not PowerCutException)
        {
            _inFlight = null;
            if (flush)
            {
                foreach (var m in _models.Values)
                {
                    m.FlushFailed();
                }
            }
            else
            {
                model.MayHaveApplied(offset, length, value);
            }

            Note($"   failed: {e.GetType().Name}: {e.Message}");
            return Outcome.Failed(e, clientRequest: true);
        }

        _inFlight = null;
        if (flush)
        {
            foreach (var m in _models.Values)
            {
                m.Flushed();
            }
        }
        else
        {
            // The engine's FUA flushes the whole pool; the model promises only what FUA does: this change.
            model.Applied(offset, length, value, fua);
        }

        return Outcome.Done;
    }

    private async Task<Outcome> ReadAsync(VolumeModel model, ReplicatedVolume volume)
    {
        var (offset, length) = PickRange(model, maxSectors: 512);
        var buffer = new byte[length];
        try
        {
            await volume.ReadAsync(offset, buffer);
        }
        catch (Exception e) when (e is not PowerCutException)
        {
            Note($"read {model.Name} [{offset}, +{length}) failed: {e.GetType().Name}: {e.Message}");
            return Outcome.Failed(e, clientRequest: true);
        }

        for (var at = 0; at < length; at += VolumeModel.SectorSize)
        {
            var index = (offset + at) / VolumeModel.SectorSize;
            var value = VolumeModel.ValueOf(buffer.AsSpan(at, VolumeModel.SectorSize), index);
            if (value is null || !model.MayReadNow(index, value.Value))
            {
                throw new EngineCheckException(this, $"reading {model.Name} at sector {index} returned {(value is null ? "bytes that are no value's" : $"value {value}")}, which is not what the volume holds now");
            }
        }

        return Outcome.Done;
    }

    private Outcome Run(string what, Func<Outcome> operation)
    {
        Note(what);
        try
        {
            return operation();
        }
        catch (Exception e) when (e is not PowerCutException and not EngineCheckException)
        {
            Note($"   failed: {e.GetType().Name}: {e.Message}");
            return Outcome.Failed(e);
        }
    }

    private (long Offset, long Length) PickRange(VolumeModel model, int maxSectors)
    {
        var sectors = model.Size / VolumeModel.SectorSize;
        var first = _random.NextInt64(sectors);
        var count = Math.Min(sectors - first, 1 + _random.Next(maxSectors));
        return (first * VolumeModel.SectorSize, count * VolumeModel.SectorSize);
    }

    private void Note(string line)
    {
        _recent.Enqueue(line);
        while (_recent.Count > 40)
        {
            _recent.Dequeue();
        }
    }

    /// <summary>The operation the power may have cut in the middle of.</summary>
    private abstract record InFlight
    {
        public sealed record Creating(string Name, long Size) : InFlight;

        public sealed record Resizing(Guid Volume, long From, long Size) : InFlight;

        public sealed record Deleting(VolumeModel Model) : InFlight;

        public sealed record Changing(Guid Volume, long Offset, long Length, int Value) : InFlight;

        public sealed record Flushing : InFlight;
    }
}

/// <summary>What became of an operation: done, or failed with an error the test may expect.</summary>
/// <param name="IsClientRequest">A request a client sends (read, write, trim, write-zeroes, flush), whose error reaches it as an NBD error.</param>
internal readonly record struct Outcome(Exception? Error, bool IsClientRequest = false)
{
    public static Outcome Done => default;

    public static Outcome Failed(Exception e, bool clientRequest = false) => new(e, clientRequest);

    public bool Succeeded => Error is null;

    /// <summary>The errno a failure reports: from a <see cref="BlockDeviceException"/>'s error, or an <see cref="IOException"/>'s HResult.</summary>
    public int? Errno => Error switch
    {
        BlockDeviceException { Error: StorageError.NoSpace } => Faults.Errno.ENOSPC,
        BlockDeviceException { Error: StorageError.Io } => Faults.Errno.EIO,
        IOException io => io.HResult,
        _ => null,
    };
}

/// <summary>The engine broke one of the checked promises; the message names the seed, so the run can be replayed.</summary>
internal sealed class EngineCheckException(EngineWorkload workload, string message)
    : Exception($"seed {workload.Seed}: {message}{Environment.NewLine}last operations:{Environment.NewLine}{workload.History}");

using Replicator.Core.Replication;
using Replicator.Core.Storage;

namespace Replicator.Core.Tests.Support.Faults;

/// <summary>The checks after a restart on what survived a power loss, and after an I/O error.</summary>
internal sealed partial class EngineWorkload
{
    /// <summary>
    /// Brings the power back (<see cref="FaultFileSystem.PowerLoss"/>), opens the engine again on
    /// what survived — with the power cut once more during that recovery at
    /// <paramref name="cutDuringRecovery"/>, when given — and checks it.
    /// </summary>
    public async Task RestartAfterPowerLossAsync(long? cutDuringRecovery = null)
    {
        Files.PowerLoss();
        if (cutDuringRecovery is { } cut)
        {
            Files.CutPowerAt(cut);
            try
            {
                Node = SingleNode.Open(Files, Options, CheckpointEvery, PeerName);
                Files.CancelPowerCut();
            }
            catch (PowerCutException)
            {
                Note("-- power cut again during recovery");
                Files.PowerLoss();
                Node = SingleNode.Open(Files, Options, CheckpointEvery, PeerName);
            }
        }
        else
        {
            Node = SingleNode.Open(Files, Options, CheckpointEvery, PeerName);
        }

        await VerifyAfterRestartAsync();
    }

    /// <summary>
    /// Checks the engine as opened on what survived, against the models: every volume that must
    /// exist does, and no other; every sector holds a value that may have survived (an acknowledged
    /// and flushed write, unless a later change covers it; nothing from elsewhere, no garbage); the
    /// pool's accounting adds up and no free extent holds data; every sector that differs from the
    /// absent peer's (zeros) is marked in the bitmap, directly or through the activity log.
    /// </summary>
    public async Task VerifyAfterRestartAsync()
    {
        var undecided = _undecided.ToList();
        if (_inFlight is { } inFlight)
        {
            undecided.Add(inFlight);
        }

        _inFlight = null;
        _undecided.Clear();
        foreach (var change in undecided.OfType<InFlight.Changing>())
        {
            if (_models.TryGetValue(change.Volume, out var changed))
            {
                changed.MayHaveApplied(change.Offset, change.Length, change.Value);
            }
        }

        foreach (var (id, volume) in Node.Volumes)
        {
            var deleting = undecided.OfType<InFlight.Deleting>().FirstOrDefault(d => d.Model.Id == id);
            if (!_models.TryGetValue(id, out var model))
            {
                model = deleting?.Model;
                if (model is null && undecided.OfType<InFlight.Creating>().Any(c => c.Name == volume.Name && c.Size == volume.Size))
                {
                    model = new VolumeModel(id, volume.Name, volume.Size);
                }

                _models[id] = model ?? throw new EngineCheckException(this, $"volume {volume.Name} ({id}) exists after the restart, but nobody created it");
            }

            if (volume.Size != model.Size)
            {
                if (!undecided.OfType<InFlight.Resizing>().Any(r => r.Volume == id && (volume.Size == r.From || volume.Size == r.Size)))
                {
                    throw new EngineCheckException(this, $"volume {model.Name} is {volume.Size} bytes after the restart; it was {model.Size}");
                }

                model.Resize(volume.Size);
            }

            await CheckSurvivorsAsync(model, volume, mayBeGone: deleting is not null);
        }

        foreach (var model in _models.Values.ToList())
        {
            if (!Node.Volumes.ContainsKey(model.Id))
            {
                if (!undecided.OfType<InFlight.Deleting>().Any(d => d.Model.Id == model.Id))
                {
                    throw new EngineCheckException(this, $"volume {model.Name} is gone after the restart, but nobody deleted it");
                }

                _models.Remove(model.Id);
            }

            model.Restarted();
        }

        CheckAccounting();
    }

    /// <summary>After an operation failed with an injected error: nothing outside its range changed, and a change and a flush still work.</summary>
    public async Task VerifyStillUsableAsync()
    {
        foreach (var (id, model) in _models)
        {
            if (!Node.Volumes[id].DiskUsable)
            {
                // The error detached the disk (issue 13, finding 4); the admin attaches it again once it is repaired.
                Note($"-- attach-disk {model.Name}");
                Node.Volumes[id].AttachDisk();
            }

            await ForEachSectorAsync(model, Node.Volumes[id], (index, value) =>
            {
                if (value is null || !model.MayReadNow(index, value.Value))
                {
                    throw new EngineCheckException(this, $"after the error, {model.Name} sector {index} reads {(value is null ? "as no value's bytes" : $"value {value}")}, which nothing stored there");
                }
            });
        }

        if (_models.Count == 0 && !CreateVolume().Succeeded)
        {
            throw new EngineCheckException(this, "after the error was gone, a volume could not be created");
        }

        var target = _models.Values.First();
        var outcome = await WriteAsync(target, Node.Volumes[target.Id], fua: false);
        if (!outcome.Succeeded && outcome.Errno != Errno.ENOSPC)
        {
            throw new EngineCheckException(this, $"after the error was gone, a write failed: {outcome.Error!.Message}");
        }

        outcome = await ChangeAsync("flush", target, Node.Volumes[target.Id], 0, 0, 0, () => Node.Volumes[target.Id].FlushAsync(), flush: true);
        if (!outcome.Succeeded)
        {
            throw new EngineCheckException(this, $"after the error was gone, a flush failed: {outcome.Error!.Message}");
        }
    }

    private async Task CheckSurvivorsAsync(VolumeModel model, ReplicatedVolume volume, bool mayBeGone)
    {
        var dirty = DirtySectors(volume.Replica, model.Size);
        var fullSync = volume.Replica.Status.NeedsFullSync;
        await ForEachSectorAsync(model, volume, (index, value) =>
        {
            if (value is null)
            {
                throw new EngineCheckException(this, $"{model.Name} sector {index} holds bytes that no change wrote there (garbage, or data of another place); it may hold {model.Survivors(index)}");
            }

            if (!model.MaySurvive(index, value.Value) && !(mayBeGone && value == 0))
            {
                throw new EngineCheckException(this, $"{model.Name} sector {index} holds value {value} after the power loss; only {model.Survivors(index)} may survive there");
            }

            if (PeerName is not null && value != 0 && !fullSync && !dirty[index])
            {
                throw new EngineCheckException(this, $"{model.Name} sector {index} holds value {value}, which the peer lacks, but its region is not marked in the bitmap: the peer would never get it");
            }

            model.Observed(index, value.Value);
        });
    }

    /// <summary>Reads the whole volume, an extent at a time, and hands each sector's value (null: no value's bytes) to <paramref name="check"/>.</summary>
    private async Task ForEachSectorAsync(VolumeModel model, ReplicatedVolume volume, Action<long, int?> check)
    {
        var buffer = new byte[ExtentSize];
        for (var offset = 0L; offset < model.Size; offset += buffer.Length)
        {
            var length = (int)Math.Min(buffer.Length, model.Size - offset);
            try
            {
                await volume.ReadAsync(offset, buffer.AsMemory(0, length));
            }
            catch (Exception e) when (e is not PowerCutException)
            {
                // A read of the whole volume must work here: the failure names the seed and the steps that led to it.
                throw new EngineCheckException(this, $"reading {model.Name} [{offset}, +{length}) failed: {e.GetType().Name}: {e.Message}");
            }

            for (var at = 0; at < length; at += VolumeModel.SectorSize)
            {
                var index = (offset + at) / VolumeModel.SectorSize;
                check(index, VolumeModel.ValueOf(buffer.AsSpan(at, VolumeModel.SectorSize), index));
            }
        }
    }

    /// <summary>Which sectors the replica's bitmap marks as differing from the peer.</summary>
    private static bool[] DirtySectors(ReplicaStore replica, long size)
    {
        var dirty = new bool[size / VolumeModel.SectorSize];
        for (var run = replica.NextOutOfSyncRun(0, 1 << 30); run is { } r; run = replica.NextOutOfSyncRun(r.Offset + r.Length, 1 << 30))
        {
            var end = Math.Min(dirty.Length, (r.Offset + r.Length) / VolumeModel.SectorSize);
            for (var index = r.Offset / VolumeModel.SectorSize; index < end; index++)
            {
                dirty[index] = true;
            }
        }

        return dirty;
    }

    /// <summary>The pool's accounting adds up, and every extent no volume maps reads as zeros in the data file.</summary>
    private void CheckAccounting()
    {
        var usage = Node.Pool.Usage;
        var allocated = Node.Volumes.Values.Sum(v => v.Local.AllocatedBytes);
        if (usage.Allocated != allocated || usage.Free != usage.Capacity - allocated || usage.Volumes != Node.Volumes.Count)
        {
            throw new EngineCheckException(this, $"the pool's accounting does not add up: {usage} against {allocated} bytes mapped by {Node.Volumes.Count} volumes");
        }

        var mapped = Node.Volumes.Values.SelectMany(v => v.Local.State.Map.Entries()).Select(e => e.Extent).ToHashSet();
        using var data = Files.OpenFile(SingleNode.DataFile, FileOpenMode.Open);
        var extent = new byte[ExtentSize];
        for (var position = data.NextData(0); position >= 0; position = data.NextData(position))
        {
            var index = position / ExtentSize;
            if (!mapped.Contains(index))
            {
                data.Read(index * ExtentSize, extent);
                if (extent.AsSpan().ContainsAnyExcept((byte)0))
                {
                    throw new EngineCheckException(this, $"extent {index} is free but holds data: a new mapping would show it to another volume");
                }
            }

            position = (index + 1) * ExtentSize;
        }
    }
}

using Replicator.Core.Pool;
using Replicator.Core.Volumes;

namespace Replicator.Core.Metadata;

/// <summary>A volume as the pool's metadata knows it.</summary>
public sealed class VolumeState(uint localId, Guid id, string name, long size)
{
    public uint LocalId { get; } = localId;

    public Guid Id { get; } = id;

    public string Name { get; } = name;

    public long Size { get; set; } = size;

    public BlockMap Map { get; } = new();
}

/// <summary>
/// Everything the pool's metadata records: its files, its volumes and their block maps, and
/// which extents are in use. Pure: it changes only by <see cref="Apply"/>, the same way at run
/// time and when the journal is replayed after a crash, so both paths are one code path.
/// </summary>
public sealed class PoolState
{
    private readonly Dictionary<uint, VolumeState> _volumes = [];
    private readonly List<long> _fileCapacities = [];

    public PoolState(int extentSize)
    {
        if (extentSize < 4096 || extentSize > (1 << 24) || !int.IsPow2(extentSize))
        {
            throw new ArgumentOutOfRangeException(nameof(extentSize), extentSize, "the extent size must be a power of two from 4 KiB to 16 MiB");
        }

        ExtentSize = extentSize;
        Used = new ExtentBitmap(0);
    }

    public int ExtentSize { get; }

    public IReadOnlyList<long> FileCapacities => _fileCapacities;

    public IReadOnlyCollection<VolumeState> Volumes => _volumes.Values;

    public ExtentBitmap Used { get; }

    public long ExtentCount => Used.Count;

    /// <summary>Sequence number of the last record applied.</summary>
    public ulong LastSequence { get; set; }

    public uint NextLocalId { get; private set; } = 1;

    /// <summary>Local ids are never reused, even after a delete, so a stale record cannot hit a new volume.</summary>
    public void RaiseNextLocalId(uint next) => NextLocalId = Math.Max(NextLocalId, next);

    public VolumeState? Find(string name) => _volumes.Values.FirstOrDefault(v => v.Name == name);

    public VolumeState? Find(Guid id) => _volumes.Values.FirstOrDefault(v => v.Id == id);

    public VolumeState Get(uint localId) =>
        _volumes.TryGetValue(localId, out var v) ? v : throw new InvalidDataException($"no volume with local id {localId}");

    /// <summary>Applies one change. Throws <see cref="InvalidDataException"/> when it contradicts the state.</summary>
    public void Apply(in JournalRecord record)
    {
        switch (record.Type)
        {
            case JournalRecordType.PoolFileAdded:
                if (record.Capacity <= 0 || record.Capacity % ExtentSize != 0)
                {
                    throw new InvalidDataException($"pool file capacity {record.Capacity} is not a positive multiple of the extent size {ExtentSize}");
                }

                _fileCapacities.Add(record.Capacity);
                Used.Grow(Used.Count + (record.Capacity / ExtentSize));
                break;

            case JournalRecordType.VolumeCreated:
                if (_volumes.ContainsKey(record.Volume) || Find(record.Name!) is not null || Find(record.Id) is not null)
                {
                    throw new InvalidDataException($"volume {record.Name} ({record.Id}, local {record.Volume}) already exists");
                }

                _volumes[record.Volume] = new VolumeState(record.Volume, record.Id, record.Name!, record.Size);
                NextLocalId = Math.Max(NextLocalId, record.Volume + 1);
                break;

            case JournalRecordType.VolumeDeleted:
                var deleted = Get(record.Volume);
                foreach (var (_, extent) in deleted.Map.Entries())
                {
                    Used.Clear(extent);
                }

                _volumes.Remove(record.Volume);
                break;

            case JournalRecordType.VolumeResized:
                Get(record.Volume).Size = record.Size;
                break;

            case JournalRecordType.UnitMapped:
                if (record.Extent < 0 || record.Extent >= Used.Count || !Used.Set(record.Extent))
                {
                    throw new InvalidDataException($"extent {record.Extent} cannot be mapped: it is outside the pool or already in use");
                }

                Get(record.Volume).Map.Map(record.Unit, record.Extent);
                break;

            case JournalRecordType.SyncMark:
                break;

            case JournalRecordType.UnitUnmapped:
                if (!Get(record.Volume).Map.TryUnmap(record.Unit, out var freed))
                {
                    throw new InvalidDataException($"unit {record.Unit} of volume {record.Volume} is not mapped");
                }

                Used.Clear(freed);
                break;

            default:
                throw new InvalidDataException($"unknown journal record type {record.Type}");
        }
    }
}

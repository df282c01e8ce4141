using System.Diagnostics;

namespace Replicator.Core.Replication;

internal enum VerifyState
{
    Running,
    Completed,
    Failed,
}

/// <summary>Which replica's copy of a differing range fails its own checksums.</summary>
internal enum DamagedReplica
{
    /// <summary>Neither: both copies are intact and differ (a real divergence; the generation rules decide).</summary>
    None,

    /// <summary>The copy on the node that ran the verify.</summary>
    Local,

    /// <summary>The copy on its peer.</summary>
    Peer,

    /// <summary>Both: no good copy exists, and the range reads as an I/O error.</summary>
    Both,
}

/// <summary>A range of regions that differ between the replicas, or whose copy on one side (or both) fails its checksums.</summary>
internal readonly record struct DifferingRange(long Offset, long Length, DamagedReplica Damaged = DamagedReplica.None);

/// <summary>What a verify found (or, while it runs, how far it got).</summary>
internal sealed record VerifyReport(
    VerifyState State,
    long TotalBytes,
    long CheckedBytes,
    int RegionSize,
    long DifferingRegions,
    IReadOnlyList<DifferingRange> Differing,
    DateTimeOffset Started,
    TimeSpan Elapsed,
    string? Error);

/// <summary>
/// Online verify: compares the two replicas region by region (see <see cref="RegionSums"/>: a hash of
/// the contents, holes as zeros, and whether every block passes its own checksum) while the volume
/// stays in use. Each chunk is compared under the volume's write order, so a write in flight cannot
/// make two equal replicas look different on the node that orders writes; a region that differs is
/// checked again after the pass, and only a difference that persists is reported, with the side whose
/// copy fails its checksums (<see cref="RegionCompare"/>). Verify reports; a checksum resync repairs.
/// </summary>
internal sealed class VolumeVerifier
{
    public const int DefaultRegionSize = 64 << 10;
    private const int RegionsPerChunk = 64;

    private readonly ReplicatedVolume _volume;
    private readonly int _regionSize;
    private readonly Stopwatch _clock = new();
    private readonly DateTimeOffset _started = DateTimeOffset.UtcNow;
    private long _checked;
    private VerifyReport? _final;

    public VolumeVerifier(ReplicatedVolume volume, int regionSize = DefaultRegionSize)
    {
        if (regionSize < 4096 || regionSize > 16 << 20 || !int.IsPow2(regionSize))
        {
            throw new ArgumentOutOfRangeException(nameof(regionSize), regionSize, "the verify region is a power of two from 4 KiB to 16 MiB");
        }

        _volume = volume;
        _regionSize = regionSize;
    }

    public VerifyReport Report => Volatile.Read(ref _final)
        ?? new VerifyReport(VerifyState.Running, _volume.Size, Interlocked.Read(ref _checked), _regionSize, 0, [], _started, _clock.Elapsed, null);

    public async Task<VerifyReport> RunAsync(CancellationToken cancellationToken)
    {
        _clock.Start();
        try
        {
            var differing = new List<(long Region, DamagedReplica Damaged)>();
            var size = _volume.Size;
            var chunk = (long)_regionSize * RegionsPerChunk;
            for (var offset = 0L; offset < size; offset += chunk)
            {
                var length = Math.Min(chunk, size - offset);
                differing.AddRange(await CompareAsync(offset, length, cancellationToken));
                Interlocked.Add(ref _checked, length);
            }

            var persistent = new List<(long Region, DamagedReplica Damaged)>();
            foreach (var (region, _) in differing)
            {
                var start = region * _regionSize;
                persistent.AddRange(await CompareAsync(start, Math.Min(_regionSize, size - start), cancellationToken));
            }

            return Finish(new VerifyReport(VerifyState.Completed, size, size, _regionSize, persistent.Count, Coalesce(persistent, size), _started, _clock.Elapsed, null));
        }
        catch (Exception e) when (e is PeerUnavailableException or PeerFailedException or Devices.BlockDeviceException or InvalidOperationException)
        {
            return Finish(Report with { State = VerifyState.Failed, Error = e.Message });
        }
    }

    private async Task<List<(long Region, DamagedReplica Damaged)>> CompareAsync(long offset, long length, CancellationToken cancellationToken)
    {
        var session = _volume.Session ?? throw new InvalidOperationException(
            $"volume '{_volume.Name}' is not connected to its peer {_volume.PeerName}; verify needs both replicas");
        using var order = await _volume.OrderRangeAsync(offset, length, cancellationToken);
        var peer = session.Peer.ChecksumsAsync(offset, length, _regionSize, cancellationToken);
        var local = await _volume.ChecksumsAsync(offset, length, _regionSize, cancellationToken);
        var remote = await peer;
        if (remote.Count != local.Count)
        {
            throw new InvalidOperationException($"the peer returned {remote.Count} checksums for {local.Count} regions");
        }

        var differing = new List<(long, DamagedReplica)>();
        for (var i = 0; i < local.Count; i++)
        {
            var damaged = RegionCompare.Judge(local, remote, i) switch
            {
                RegionVerdict.Same => (DamagedReplica?)null,
                RegionVerdict.Differ => DamagedReplica.None,
                RegionVerdict.TakePeer => DamagedReplica.Local,
                RegionVerdict.SendLocal when local.Status[i] == Hashing.BlockStatus.Good => DamagedReplica.Peer,
                _ => DamagedReplica.Both,
            };
            if (damaged is { } kind)
            {
                differing.Add(((offset / _regionSize) + i, kind));
            }
        }

        return differing;
    }

    private List<DifferingRange> Coalesce(List<(long Region, DamagedReplica Damaged)> regions, long size)
    {
        var ranges = new List<DifferingRange>();
        foreach (var (region, damaged) in regions)
        {
            var start = region * _regionSize;
            var length = Math.Min(_regionSize, size - start);
            if (ranges.Count > 0 && ranges[^1].Offset + ranges[^1].Length == start && ranges[^1].Damaged == damaged)
            {
                ranges[^1] = ranges[^1] with { Length = ranges[^1].Length + length };
            }
            else
            {
                ranges.Add(new DifferingRange(start, length, damaged));
            }
        }

        return ranges;
    }

    private VerifyReport Finish(VerifyReport report)
    {
        _clock.Stop();
        Volatile.Write(ref _final, report);
        return report;
    }
}

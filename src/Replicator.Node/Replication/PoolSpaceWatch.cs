using Replicator.Core.Devices;
using Replicator.Core.Replication;
using Replicator.Node.Roles;

namespace Replicator.Node.Replication;

/// <summary>
/// Attaches again, by itself, a replica detached because its pool was full, once the pool has room: every
/// <see cref="Period"/> it looks at the pool's free extents and at the space left on the file system under
/// the pool (a sparse pool file can outgrow its file system), and when both leave <see cref="Headroom"/>
/// it attaches the disk; the volume then pairs again and the peer resyncs what it marked meanwhile. A
/// replica whose disk failed waits for an admin instead (<c>replicator volume attach-disk</c>).
/// </summary>
internal sealed partial class PoolSpaceWatch(NodeStorage storage, ReplicationManager volumes, ILogger<PoolSpaceWatch> logger) : BackgroundService
{
    public static readonly TimeSpan Period = TimeSpan.FromSeconds(2);

    /// <summary>The room a full pool must have again before its replica is attached: 16 MiB, and at least 16 extents.</summary>
    public long Headroom => Math.Max(16L << 20, 16L * storage.Pool.ExtentSize);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Period);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                CheckOnce();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Attaches every replica detached for a full pool, if the pool has room now.</summary>
    public void CheckOnce()
    {
        var full = volumes.Volumes.Where(v => v.PairingState.Disk == DiskAttachment.Full).ToList();
        if (full.Count == 0 || !HasRoom(out var free))
        {
            return;
        }

        foreach (var volume in full)
        {
            try
            {
                volume.AttachDisk();
                LogAttached(volume.Name, free);
            }
            catch (Exception e) when (e is BlockDeviceException or PairingRejectedException)
            {
                LogStillFull(volume.Name, e.Message);
            }
        }
    }

    private bool HasRoom(out long free)
    {
        var pool = storage.Pool.Usage.Free;
        long fileSystem;
        try
        {
            fileSystem = new DriveInfo(storage.PoolDirectory).AvailableFreeSpace;
        }
        catch (IOException)
        {
            fileSystem = 0;
        }

        free = Math.Min(pool, fileSystem);
        return free >= Headroom;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Volume}: the pool has room again ({Free} bytes free); its replica is attached and resyncs from the peer")]
    private partial void LogAttached(string volume, long free);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Volume}: attaching its replica again failed ({Reason}); it stays detached")]
    private partial void LogStillFull(string volume, string reason);
}

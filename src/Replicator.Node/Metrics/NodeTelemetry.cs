using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Replicator.Node.Replication;
using Replicator.Node.Roles;

namespace Replicator.Node.Metrics;

/// <summary>
/// The node's metrics as a whole: the client I/O instruments (fed by <see cref="MeteredDevice"/>),
/// gauges read at scrape time from the pool and the replicated volumes, the Prometheus exporter
/// behind <c>GET /metrics</c>, and a once-a-second sampler for live I/O rates.
/// </summary>
internal sealed class NodeTelemetry : BackgroundService
{
    private readonly ConcurrentDictionary<string, VolumeIo> _io = new();
    private readonly ReplicationManager _volumes;

    public NodeTelemetry(NodeStorage storage, ReplicationManager volumes)
    {
        _volumes = volumes;
        Metrics = new NodeMetrics();
        Exporter = new PrometheusExporter(NodeMetrics.MeterName, NodeMetrics.LatencyBuckets);
        var meter = Metrics.Meter;
        meter.CreateObservableGauge("replicator.pool.capacity", () => storage.Pool.Usage.Capacity, "By", "Pool capacity");
        meter.CreateObservableGauge("replicator.pool.virtual", () => storage.Pool.Usage.Virtual, "By", "Sum of the volumes' virtual sizes (thin: may exceed capacity)");
        meter.CreateObservableGauge("replicator.pool.allocated", () => storage.Pool.Usage.Allocated, "By", "Pool space holding data");
        meter.CreateObservableGauge("replicator.pool.free", () => storage.Pool.Usage.Free, "By", "Pool space free for new writes");
        meter.CreateObservableGauge("replicator.replication.out_of_sync", () => PerVolume(v => v.Replica.OutOfSyncBytes), "By", "Bytes that may differ between the replicas, by volume");
        meter.CreateObservableCounter("replicator.resync.sent", () => PerVolume(v => v.Resync.SentBytes), "By", "Data bytes sent by resyncs from this node, by volume");
        meter.CreateObservableGauge("replicator.resync.rate", () => PerVolume(v => (long)v.Resync.Progress.BytesPerSecond), "By/s", "Current resync rate from this node, by volume");
        meter.CreateObservableGauge("replicator.replication.lag", () => volumes.PeerRoundTrip?.TotalSeconds ?? 0, "s",
            "Replication lag: the last round trip to the peer (what a write waits for beyond the local disk)");
        meter.CreateObservableGauge("replicator.pool.block_checksums", () => storage.Pool.BlockChecksums ? 1 : 0, null,
            "1 while every block is stored with a checksum and checked on read; 0 only for a reference measurement (bad blocks go unnoticed)");
        meter.CreateObservableCounter("replicator.integrity.detected", () => PerVolume(v => v.Integrity.Snapshot.Detected), "{block}",
            "4 KiB blocks found failing their checksums on this node's replica, by volume");
        meter.CreateObservableCounter("replicator.integrity.healed", () => PerVolume(v => v.Integrity.Snapshot.Healed), "{block}",
            "Damaged blocks rewritten from the peer's verified copy, by volume");
        meter.CreateObservableCounter("replicator.integrity.unrecoverable", () => PerVolume(v => v.Integrity.Snapshot.Unrecoverable), "{block}",
            "Damaged blocks with no good copy on either replica (they read as I/O errors), by volume");
        meter.CreateObservableCounter("replicator.integrity.unverified", () => PerVolume(v => v.Integrity.Snapshot.Unverified), "{block}",
            "Blocks the check after a crash could not vouch for (a write that was not durable), by volume");
        meter.CreateObservableGauge("replicator.scrub.done", () => PerVolume(v => v.Scrub.Progress.DoneBytes), "By", "Bytes the running scrub pass has covered, by volume");
        meter.CreateObservableGauge("replicator.scrub.rate", () => PerVolume(v => (long)v.Scrub.Progress.BytesPerSecond), "By/s", "Current scrub rate, by volume");
        meter.CreateObservableGauge("replicator.replica.disk_detached", DetachedDisks, null,
            "1 while this node's replica of the volume has its disk detached, by volume and reason (failed: an I/O error; pool-full)");
        meter.CreateObservableGauge("replicator.replication.degraded", () => PerVolume(v => v.HasPeer && !IsRedundant(v) ? 1 : 0), null,
            "1 while the volume is not held by both replicas (not paired, a disk detached, a replica behind), by volume");
        meter.CreateObservableGauge("replicator.peer.connected", () => volumes.Link is null ? 0 : 1, null, "1 while connected to the peer");
        meter.CreateObservableCounter("replicator.peer.connects", () => (long)volumes.Connects, "{connection}", "Connections made to the peer");
        meter.CreateObservableCounter("replicator.peer.disconnects", () => (long)volumes.Disconnects, "{connection}", "Connections to the peer lost");
        meter.CreateObservableGauge("replicator.peer.encrypted", () => volumes.Security.Link is { Encrypted: true } ? 1 : 0, null, "1 while the peer link up now is encrypted (it is authenticated either way)");
        meter.CreateObservableCounter("replicator.peer.connections.refused", () => volumes.Security.RefusedConnections, "{connection}",
            "Connections to the peer port refused before they authenticated (wrong or no certificate, not TLS, too slow, too many at once)");
        meter.CreateObservableCounter("replicator.peer.requests.refused", () => volumes.Security.RefusedRequests, "{request}",
            "Requests of the authenticated peer refused because they did not fit the pairing");
    }

    public NodeMetrics Metrics { get; }

    public PrometheusExporter Exporter { get; }

    public VolumeIo Io(string volume) => _io.GetOrAdd(volume, v => new VolumeIo(v));

    public IoRates? Rates(string volume) => _io.TryGetValue(volume, out var io) ? io.Rates : null;

    public override void Dispose()
    {
        Exporter.Dispose();
        Metrics.Dispose();
        base.Dispose();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                foreach (var io in _io.Values)
                {
                    io.Sample();
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private IEnumerable<Measurement<long>> PerVolume(Func<Core.Replication.ReplicatedVolume, long> value) =>
        _volumes.Volumes.Select(v => new Measurement<long>(value(v), new KeyValuePair<string, object?>("volume", v.Name)));

    private IEnumerable<Measurement<long>> DetachedDisks() =>
        _volumes.Volumes.SelectMany(v => new[] { "failed", "pool-full" }.Select(reason => new Measurement<long>(
            Admin.DiskAlerts.Detached(v) == reason ? 1 : 0,
            new KeyValuePair<string, object?>("volume", v.Name), new KeyValuePair<string, object?>("reason", reason))));

    /// <summary>Both replicas hold the volume: paired, both disks in use, this one up to date and nothing out of sync.</summary>
    private static bool IsRedundant(Core.Replication.ReplicatedVolume volume) =>
        volume.Session is { LocalHasDisk: true, PeerHasDisk: true } && volume.DiskUsable && volume.Replica.IsUpToDate && volume.Replica.OutOfSyncBytes == 0;
}

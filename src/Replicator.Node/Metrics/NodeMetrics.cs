using System.Diagnostics.Metrics;

namespace Replicator.Node.Metrics;

/// <summary>
/// The node's instruments, on <see cref="System.Diagnostics.Metrics"/>: client I/O per volume
/// (counts, bytes, latency, requests in flight), replication (out-of-sync bytes, resync bytes and
/// rate, peer round trip, connection changes) and the pool. <c>GET /metrics</c> exports them in
/// the Prometheus text format (<see cref="PrometheusExporter"/>).
/// </summary>
internal sealed class NodeMetrics : IDisposable
{
    public const string MeterName = "Replicator";

    /// <summary>Latency buckets in seconds: 50 µs to 10 s, for loopback and disk alike.</summary>
    public static readonly double[] LatencyBuckets = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

    public NodeMetrics()
    {
        Meter = new Meter(MeterName);
        Requests = Meter.CreateCounter<long>("replicator.volume.requests", "{request}", "Client requests served, by volume and operation");
        Bytes = Meter.CreateCounter<long>("replicator.volume.bytes", "By", "Bytes moved for clients, by volume and operation (read, write, trim, zero)");
        Latency = Meter.CreateHistogram<double>("replicator.volume.latency", "s", "Client request latency, by volume and operation");
        InFlight = Meter.CreateUpDownCounter<long>("replicator.volume.inflight", "{request}", "Client requests in progress, by volume");
        Errors = Meter.CreateCounter<long>("replicator.volume.errors", "{request}", "Client requests that failed, by volume and operation");
        ConnectionChanges = Meter.CreateCounter<long>("replicator.peer.connection.changes", "{change}", "Peer connections made and lost, by state");
    }

    public Meter Meter { get; }

    public Counter<long> Requests { get; }

    public Counter<long> Bytes { get; }

    public Histogram<double> Latency { get; }

    public UpDownCounter<long> InFlight { get; }

    public Counter<long> Errors { get; }

    public Counter<long> ConnectionChanges { get; }

    public void Dispose() => Meter.Dispose();
}

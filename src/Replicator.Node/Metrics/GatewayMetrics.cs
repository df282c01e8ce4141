using System.Diagnostics.Metrics;
using Replicator.Node.Gateway;

namespace Replicator.Node.Metrics;

/// <summary>
/// The gateway's instruments, read at scrape time from its volumes: path switches and re-issued
/// requests per volume, and which node serves each volume. <c>GET /metrics</c> on the gateway's
/// admin port exports them in the Prometheus text format, beside the nodes' own <c>/metrics</c>.
/// </summary>
internal sealed class GatewayMetrics : IDisposable
{
    public const string MeterName = "Replicator.Gateway";

    private readonly Meter _meter = new(MeterName);

    public GatewayMetrics(GatewayCatalog catalog, IReadOnlyList<GatewayNode> nodes)
    {
        _meter.CreateObservableCounter("replicator.gateway.path.switches",
            () => catalog.Volumes.Select(v => Measure(v.Switches, v)), "{switch}", "Moves of a volume's I/O from one node to the other, by volume");
        _meter.CreateObservableCounter("replicator.gateway.reissued",
            () => catalog.Volumes.Select(v => Measure(v.ReissuedRequests, v)), "{request}", "Requests sent again on the other node because their path failed under them, by volume");
        _meter.CreateObservableGauge("replicator.gateway.serving",
            () => catalog.Volumes.SelectMany(v => nodes.Select(n => new Measurement<long>(v.ActiveNode == n.Name ? 1 : 0,
                new KeyValuePair<string, object?>("volume", v.Name), new KeyValuePair<string, object?>("node", n.Name)))),
            null, "1 for the node that serves the volume's I/O now, by volume and node");
        _meter.CreateObservableGauge("replicator.gateway.attached",
            () => catalog.Volumes.Select(v => Measure(v.Attachments, v)), "{client}", "Clients attached through the gateway, by volume");
        Exporter = new PrometheusExporter(MeterName, NodeMetrics.LatencyBuckets);
    }

    public PrometheusExporter Exporter { get; }

    public void Dispose()
    {
        Exporter.Dispose();
        _meter.Dispose();
    }

    private static Measurement<long> Measure(long value, GatewayVolume volume) =>
        new(value, new KeyValuePair<string, object?>("volume", volume.Name));
}

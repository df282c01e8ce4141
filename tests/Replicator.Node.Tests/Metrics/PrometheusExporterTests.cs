using System.Diagnostics.Metrics;
using Replicator.Node.Metrics;

namespace Replicator.Node.Tests.Metrics;

public sealed class PrometheusExporterTests : IDisposable
{
    private readonly string _meterName = "test." + Guid.NewGuid().ToString("N");
    private readonly Meter _meter;
    private readonly PrometheusExporter _exporter;

    public PrometheusExporterTests()
    {
        _meter = new Meter(_meterName);
        _exporter = new PrometheusExporter(_meterName, [0.001, 0.01, 0.1]);
    }

    public void Dispose()
    {
        _exporter.Dispose();
        _meter.Dispose();
    }

    [Fact]
    public void Counters_sum_per_label_set_with_total_and_unit_suffixes()
    {
        var counter = _meter.CreateCounter<long>("replicator.volume.bytes", "By", "Bytes moved");
        counter.Add(100, new KeyValuePair<string, object?>("volume", "v1"), new KeyValuePair<string, object?>("op", "write"));
        counter.Add(23, new KeyValuePair<string, object?>("op", "write"), new KeyValuePair<string, object?>("volume", "v1"));
        counter.Add(7, new KeyValuePair<string, object?>("volume", "v2"), new KeyValuePair<string, object?>("op", "read"));

        var text = _exporter.Render();
        Assert.Contains("# TYPE replicator_volume_bytes_total counter\n", text);
        Assert.Contains("replicator_volume_bytes_total{op=\"write\",volume=\"v1\"} 123\n", text);
        Assert.Contains("replicator_volume_bytes_total{op=\"read\",volume=\"v2\"} 7\n", text);
    }

    [Fact]
    public void Histograms_are_cumulative_buckets_with_sum_and_count()
    {
        var histogram = _meter.CreateHistogram<double>("replicator.volume.latency", "s", "Latency");
        foreach (var value in new[] { 0.0005, 0.005, 0.005, 0.05, 5 })
        {
            histogram.Record(value, new KeyValuePair<string, object?>("volume", "v"));
        }

        var text = _exporter.Render();
        Assert.Contains("# TYPE replicator_volume_latency_seconds histogram\n", text);
        Assert.Contains("replicator_volume_latency_seconds_bucket{volume=\"v\",le=\"0.001\"} 1\n", text);
        Assert.Contains("replicator_volume_latency_seconds_bucket{volume=\"v\",le=\"0.01\"} 3\n", text);
        Assert.Contains("replicator_volume_latency_seconds_bucket{volume=\"v\",le=\"0.1\"} 4\n", text);
        Assert.Contains("replicator_volume_latency_seconds_bucket{volume=\"v\",le=\"+Inf\"} 5\n", text);
        Assert.Contains("replicator_volume_latency_seconds_count{volume=\"v\"} 5\n", text);
        Assert.Contains("replicator_volume_latency_seconds_sum{volume=\"v\"} 5.0605", text);
    }

    [Fact]
    public void Observable_gauges_are_read_at_every_scrape_and_vanished_series_are_dropped()
    {
        var volumes = new List<string> { "a", "b" };
        var reading = 1L;
        _meter.CreateObservableGauge("replicator.replication.out_of_sync",
            () => volumes.Select(v => new Measurement<long>(reading, new KeyValuePair<string, object?>("volume", v))), "By");

        Assert.Contains("replicator_replication_out_of_sync_bytes{volume=\"b\"} 1\n", _exporter.Render());
        reading = 42;
        volumes.Remove("b");
        var text = _exporter.Render();
        Assert.Contains("# TYPE replicator_replication_out_of_sync_bytes gauge\n", text);
        Assert.Contains("replicator_replication_out_of_sync_bytes{volume=\"a\"} 42\n", text);
        Assert.DoesNotContain("volume=\"b\"", text);
    }

    [Fact]
    public void Label_values_are_escaped()
    {
        var counter = _meter.CreateCounter<long>("replicator.things");
        counter.Add(1, new KeyValuePair<string, object?>("name", "quote\" back\\slash\nline"));
        Assert.Contains("replicator_things_total{name=\"quote\\\" back\\\\slash\\nline\"} 1\n", _exporter.Render());
    }

    [Fact]
    public void Instruments_of_other_meters_are_ignored()
    {
        using var other = new Meter("other." + Guid.NewGuid().ToString("N"));
        other.CreateCounter<long>("replicator.elsewhere").Add(5);
        Assert.DoesNotContain("elsewhere", _exporter.Render());
    }
}

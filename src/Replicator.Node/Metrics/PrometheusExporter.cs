using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace Replicator.Node.Metrics;

/// <summary>
/// Collects the measurements of one <see cref="Meter"/> with a <see cref="MeterListener"/> and
/// renders them in the Prometheus text exposition format (version 0.0.4): counters as
/// <c>_total</c>, up-down counters and observable gauges as gauges, histograms as cumulative
/// <c>_bucket{le=…}</c>, <c>_sum</c> and <c>_count</c>. Names are the instrument names with dots
/// as underscores and the unit appended (<c>_bytes</c>, <c>_seconds</c>).
/// </summary>
internal sealed class PrometheusExporter : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<Instrument, Series> _series = new();
    private readonly double[] _buckets;
    private readonly Lock _scrape = new();

    public PrometheusExporter(string meterName, double[] buckets)
    {
        _buckets = buckets;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == meterName)
            {
                _series.TryAdd(instrument, new Series(instrument));
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.Start();
    }

    /// <summary>The whole exposition: gauges read now, everything else as accumulated.</summary>
    public string Render()
    {
        lock (_scrape)
        {
            foreach (var series in _series.Values.Where(s => s.IsObservable))
            {
                series.ClearGauges();
            }

            _listener.RecordObservableInstruments();
            var text = new StringBuilder();
            foreach (var series in _series.Values.OrderBy(s => s.Name, StringComparer.Ordinal))
            {
                series.Render(text, _buckets);
            }

            return text.ToString();
        }
    }

    public void Dispose() => _listener.Dispose();

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (_series.TryGetValue(instrument, out var series))
        {
            series.Add(tags, value, _buckets);
        }
    }

    /// <summary>Prometheus label text for the tags, sorted by key: <c>{a="1",b="x"}</c>.</summary>
    internal static string Labels(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (tags.IsEmpty)
        {
            return string.Empty;
        }

        var pairs = tags.ToArray().OrderBy(t => t.Key, StringComparer.Ordinal);
        return "{" + string.Join(",", pairs.Select(t => $"{t.Key}=\"{Escape(Convert.ToString(t.Value, CultureInfo.InvariantCulture) ?? "")}\"")) + "}";
    }

    private static string Escape(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    /// <summary>One instrument's values, per label set.</summary>
    private sealed class Series
    {
        private readonly Instrument _instrument;
        private readonly ConcurrentDictionary<TagKey, Cell> _cells = new();

        public Series(Instrument instrument)
        {
            _instrument = instrument;
            Name = PrometheusName(instrument);
            IsObservable = instrument.IsObservable;
        }

        public string Name { get; }

        public bool IsObservable { get; }

        private string Type => _instrument switch
        {
            Counter<long> or Counter<double> or ObservableCounter<long> or ObservableCounter<double> => "counter",
            Histogram<double> or Histogram<long> => "histogram",
            _ => "gauge",
        };

        public void Add(ReadOnlySpan<KeyValuePair<string, object?>> tags, double value, double[] buckets)
        {
            var key = TagKey.Of(tags);
            if (!_cells.TryGetValue(key, out var cell))
            {
                cell = _cells.GetOrAdd(key, new Cell(buckets.Length, Labels(tags)));
            }

            lock (cell)
            {
                if (IsObservable)
                {
                    cell.Sum = value;
                    cell.Present = true;
                    return;
                }

                cell.Sum += value;
                cell.Count++;
                cell.Present = true;
                if (Type == "histogram")
                {
                    var i = Array.BinarySearch(buckets, value);
                    cell.Buckets[i < 0 ? ~i : i]++;
                }
            }
        }

        public void ClearGauges()
        {
            foreach (var cell in _cells.Values)
            {
                lock (cell)
                {
                    cell.Present = false;
                }
            }
        }

        public void Render(StringBuilder text, double[] buckets)
        {
            var cells = _cells.Values.Where(c => c.Present).OrderBy(c => c.Labels, StringComparer.Ordinal).ToList();
            if (cells.Count == 0)
            {
                return;
            }

            text.Append("# HELP ").Append(Name).Append(' ').Append(_instrument.Description ?? Name).Append('\n');
            text.Append("# TYPE ").Append(Name).Append(' ').Append(Type).Append('\n');
            foreach (var cell in cells)
            {
                var labels = cell.Labels;
                lock (cell)
                {
                    if (Type != "histogram")
                    {
                        text.Append(Name).Append(labels).Append(' ').Append(Format(cell.Sum)).Append('\n');
                        continue;
                    }

                    long cumulative = 0;
                    for (var i = 0; i < buckets.Length; i++)
                    {
                        cumulative += cell.Buckets[i];
                        text.Append(Name).Append("_bucket").Append(WithLabel(labels, "le", Format(buckets[i]))).Append(' ').Append(cumulative).Append('\n');
                    }

                    text.Append(Name).Append("_bucket").Append(WithLabel(labels, "le", "+Inf")).Append(' ').Append(cell.Count).Append('\n');
                    text.Append(Name).Append("_sum").Append(labels).Append(' ').Append(Format(cell.Sum)).Append('\n');
                    text.Append(Name).Append("_count").Append(labels).Append(' ').Append(cell.Count).Append('\n');
                }
            }
        }

        private static string WithLabel(string labels, string key, string value) =>
            labels.Length == 0 ? $"{{{key}=\"{value}\"}}" : labels[..^1] + $",{key}=\"{value}\"}}";

        private static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);

        private static string PrometheusName(Instrument instrument)
        {
            var name = instrument.Name.Replace('.', '_').Replace('-', '_');
            var unit = instrument.Unit switch
            {
                "By" => "_bytes",
                "s" => "_seconds",
                "By/s" => "_bytes_per_second",
                _ => "",
            };
            if (!name.EndsWith(unit, StringComparison.Ordinal))
            {
                name += unit;
            }

            return instrument is Counter<long> or Counter<double> or ObservableCounter<long> or ObservableCounter<double> ? name + "_total" : name;
        }
    }

    /// <summary>
    /// A label set as a dictionary key without building its text: up to three tag values, which
    /// our instruments never exceed (volume, operation, reason). Found on the hot path with no allocation.
    /// </summary>
    private readonly record struct TagKey(string? K0, object? V0, string? K1, object? V1, string? K2, object? V2)
    {
        /// <summary>The key of a label set, whatever order its tags came in.</summary>
        public static TagKey Of(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            if (tags.Length > 3)
            {
                throw new ArgumentException("instruments of this exporter carry at most three tags");
            }

            Span<KeyValuePair<string, object?>> sorted = [default, default, default];
            tags.CopyTo(sorted);
            var used = sorted[..tags.Length];
            for (var i = 1; i < used.Length; i++)
            {
                for (var j = i; j > 0 && string.CompareOrdinal(used[j - 1].Key, used[j].Key) > 0; j--)
                {
                    (used[j - 1], used[j]) = (used[j], used[j - 1]);
                }
            }

            return new(sorted[0].Key, sorted[0].Value, sorted[1].Key, sorted[1].Value, sorted[2].Key, sorted[2].Value);
        }
    }

    private sealed class Cell(int buckets, string labels)
    {
        public readonly long[] Buckets = new long[buckets + 1];
        public readonly string Labels = labels;
        public double Sum;
        public long Count;
        public bool Present;
    }
}

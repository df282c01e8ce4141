using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace Replicator.Benchmarks.Support;

/// <summary>
/// "GB/s": bytes processed per operation (the benchmark's <c>Size</c> parameter) over the mean
/// time. Decimal gigabytes, as storage vendors quote them.
/// </summary>
internal sealed class ThroughputColumn : IColumn
{
    public const string SizeParameter = "Size";

    public string Id => nameof(ThroughputColumn);

    public string ColumnName => "GB/s";

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 0;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => "Bytes hashed (or copied) per second, in 10^9 bytes";

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) =>
        GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var size = benchmarkCase.Parameters.Items.FirstOrDefault(p => p.Name == SizeParameter)?.Value;
        var report = summary[benchmarkCase];
        if (size is not int bytes || report?.ResultStatistics is not { } stats || stats.Mean <= 0)
        {
            return "-";
        }

        // Mean is in nanoseconds: bytes per nanosecond is GB/s.
        return (bytes / stats.Mean).ToString("N2", style.CultureInfo);
    }

    public bool IsAvailable(Summary summary) => true;

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
}

/// <summary>Adds <see cref="ThroughputColumn"/> to a benchmark class: <c>[Config(typeof(ThroughputConfig))]</c>.</summary>
internal sealed class ThroughputConfig : ManualConfig
{
    public ThroughputConfig() => AddColumn(new ThroughputColumn());
}

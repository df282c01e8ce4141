using System.Diagnostics;
using Replicator.Core.Devices;

namespace Replicator.Node.Metrics;

/// <summary>
/// A volume as the NBD server sees it, counted: every client request is recorded (count, bytes,
/// latency, in flight) under the volume's name, and summed into <see cref="VolumeIo"/> for the
/// live rates of <c>status</c> and the status page.
/// </summary>
internal sealed class MeteredDevice(IBlockDevice inner, VolumeIo io, NodeMetrics metrics) : IBlockDevice
{
    private static readonly KeyValuePair<string, object?> Read = new("op", "read");
    private static readonly KeyValuePair<string, object?> Write = new("op", "write");
    private static readonly KeyValuePair<string, object?> Trim = new("op", "trim");
    private static readonly KeyValuePair<string, object?> Zero = new("op", "zero");
    private static readonly KeyValuePair<string, object?> Flush = new("op", "flush");

    private readonly KeyValuePair<string, object?> _volume = new("volume", io.Volume);

    public long Size => inner.Size;

    public DeviceFeatures Features => inner.Features;

    public async ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        var started = Begin();
        try
        {
            await inner.ReadAsync(offset, destination, cancellationToken);
            End(started, Read, destination.Length);
            io.AddRead(destination.Length);
        }
        catch
        {
            Fail(started, Read);
            throw;
        }
    }

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, IoFlags flags, CancellationToken cancellationToken = default)
    {
        var started = Begin();
        try
        {
            await inner.WriteAsync(offset, source, flags, cancellationToken);
            End(started, Write, source.Length);
            io.AddWrite(source.Length);
        }
        catch
        {
            Fail(started, Write);
            throw;
        }
    }

    public async ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        var started = Begin();
        try
        {
            await inner.FlushAsync(cancellationToken);
            End(started, Flush, 0);
        }
        catch
        {
            Fail(started, Flush);
            throw;
        }
    }

    public async ValueTask TrimAsync(long offset, long length, IoFlags flags, CancellationToken cancellationToken = default)
    {
        var started = Begin();
        try
        {
            await inner.TrimAsync(offset, length, flags, cancellationToken);
            End(started, Trim, length);
        }
        catch
        {
            Fail(started, Trim);
            throw;
        }
    }

    public async ValueTask WriteZeroesAsync(long offset, long length, IoFlags flags, CancellationToken cancellationToken = default)
    {
        var started = Begin();
        try
        {
            await inner.WriteZeroesAsync(offset, length, flags, cancellationToken);
            End(started, Zero, length);
        }
        catch
        {
            Fail(started, Zero);
            throw;
        }
    }

    public ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken = default) => inner.CacheAsync(offset, length, cancellationToken);

    public ValueTask<IReadOnlyList<AllocationExtent>> GetAllocationAsync(long offset, long length, CancellationToken cancellationToken = default) =>
        inner.GetAllocationAsync(offset, length, cancellationToken);

    private long Begin()
    {
        metrics.InFlight.Add(1, _volume);
        return Stopwatch.GetTimestamp();
    }

    private void End(long started, KeyValuePair<string, object?> op, long bytes)
    {
        metrics.InFlight.Add(-1, _volume);
        metrics.Requests.Add(1, _volume, op);
        if (bytes > 0)
        {
            metrics.Bytes.Add(bytes, _volume, op);
        }

        metrics.Latency.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, _volume, op);
    }

    private void Fail(long started, KeyValuePair<string, object?> op)
    {
        metrics.InFlight.Add(-1, _volume);
        metrics.Errors.Add(1, _volume, op);
        metrics.Latency.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, _volume, op);
    }
}

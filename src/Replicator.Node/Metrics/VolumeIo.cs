namespace Replicator.Node.Metrics;

/// <summary>A volume's client I/O totals, and the rates over the last sampling interval.</summary>
internal sealed class VolumeIo(string volume)
{
    private long _readOps;
    private long _writeOps;
    private long _readBytes;
    private long _writeBytes;
    private (long ReadOps, long WriteOps, long ReadBytes, long WriteBytes, long At) _previous = (0, 0, 0, 0, Environment.TickCount64);

    public string Volume { get; } = volume;

    public IoRates Rates { get; private set; } = new(0, 0, 0, 0);

    public void AddRead(long bytes)
    {
        Interlocked.Increment(ref _readOps);
        Interlocked.Add(ref _readBytes, bytes);
    }

    public void AddWrite(long bytes)
    {
        Interlocked.Increment(ref _writeOps);
        Interlocked.Add(ref _writeBytes, bytes);
    }

    /// <summary>Turns the totals since the last sample into per-second rates.</summary>
    public void Sample()
    {
        var now = (ReadOps: Interlocked.Read(ref _readOps), WriteOps: Interlocked.Read(ref _writeOps),
            ReadBytes: Interlocked.Read(ref _readBytes), WriteBytes: Interlocked.Read(ref _writeBytes), At: Environment.TickCount64);
        var seconds = Math.Max(0.001, (now.At - _previous.At) / 1000.0);
        Rates = new IoRates(
            (now.ReadOps - _previous.ReadOps) / seconds,
            (now.WriteOps - _previous.WriteOps) / seconds,
            (now.ReadBytes - _previous.ReadBytes) / seconds,
            (now.WriteBytes - _previous.WriteBytes) / seconds);
        _previous = now;
    }
}

/// <summary>Client I/O per second, averaged over the last second.</summary>
internal sealed record IoRates(double ReadIops, double WriteIops, double ReadBytesPerSecond, double WriteBytesPerSecond);

using System.Globalization;
using Replicator.IntegrationTests.Harness;

namespace Replicator.IntegrationTests.Chaos;

/// <summary>
/// The client side of the chaos soak: fio through the gateway's Unix socket, one job at a time, each rewriting
/// every 64 KiB block of one region of the volume in random order with crc32c verification headers (and reading
/// it back), now and then after trimming the region so the pool allocates again (which a full pool refuses).
/// A region whose last job finished without an error holds exactly what that job wrote: every block of it was
/// acknowledged. That is what <see cref="VerifyAsync"/> checks at the end, through any export.
/// </summary>
internal sealed class ChaosWorkload(TestCluster cluster, string volume, Random random)
{
    public const int Regions = 8;
    public const long RegionBytes = 64L << 20;

    /// <summary>Per region: the seed of the last job that wrote all of it and was acknowledged, or null (never written whole, or its last job failed).</summary>
    private readonly int?[] _acknowledged = new int?[Regions];
    private readonly Lock _lock = new();

    public int Jobs { get; private set; }

    /// <summary>Jobs that saw an I/O error (fio's error, or fio exiting non-zero).</summary>
    public int FailedJobs { get; private set; }

    public long WrittenBytes { get; private set; }

    public TimeSpan LongestIo { get; private set; }

    public List<string> Errors { get; } = [];

    /// <summary>Runs jobs until <paramref name="stop"/> is cancelled (the job running then finishes).</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var region = random.Next(Regions);
            var seed = random.Next(1, int.MaxValue);
            lock (_lock)
            {
                // From the first byte the job changes, the region holds no single job's data until it ends well.
                _acknowledged[region] = null;
            }

            var ok = true;
            if (random.Next(3) == 0)
            {
                ok = Record(await Fio.RunAsync(cluster.GatewayUri(volume), cluster.Directory, "chaos-trim", [.. Region(region), "--rw=trim", "--bs=1M"]), "trim", region);
            }

            if (ok)
            {
                ok = Record(await Fio.RunAsync(cluster.GatewayUri(volume), cluster.Directory, "chaos", [.. Job(region, seed), "--do_verify=1"]), "write", region);
            }

            if (ok)
            {
                lock (_lock)
                {
                    _acknowledged[region] = seed;
                }
            }
        }
    }

    /// <summary>Checks every region whose last job was acknowledged through <paramref name="uri"/>; returns the regions that do not hold it.</summary>
    public async Task<(int Checked, List<string> Lost)> VerifyAsync(Func<string, string> uri)
    {
        var lost = new List<string>();
        var checkedRegions = 0;
        for (var region = 0; region < Regions; region++)
        {
            if (_acknowledged[region] is not { } seed)
            {
                continue;
            }

            checkedRegions++;
            var result = await Fio.RunAsync(uri(volume), cluster.Directory, "chaos", [.. Job(region, seed), "--verify_only=1"]);
            if (result.ExitCode != 0 || result.Errors != 0)
            {
                lost.Add($"region {region} (seed {seed}): {result.Output}");
            }
        }

        return (checkedRegions, lost);
    }

    private bool Record(FioResult result, string what, int region)
    {
        Jobs++;
        WrittenBytes += result.WrittenBytes;
        LongestIo = result.LongestIo > LongestIo ? result.LongestIo : LongestIo;
        if (result.ExitCode == 0 && result.Errors == 0)
        {
            return true;
        }

        FailedJobs++;
        Errors.Add($"{DateTime.UtcNow:HH:mm:ss} {what} of region {region}: fio error {result.Errors}, exit {result.ExitCode}");
        return false;
    }

    private static string[] Region(int region) =>
        [$"--offset={(region * RegionBytes).ToString(CultureInfo.InvariantCulture)}", $"--size={RegionBytes.ToString(CultureInfo.InvariantCulture)}"];

    private static string[] Job(int region, int seed) =>
        [.. Region(region), "--rw=randwrite", "--bs=64k", "--iodepth=8", "--verify=crc32c", "--verify_fatal=1",
            $"--randseed={seed.ToString(CultureInfo.InvariantCulture)}"];
}

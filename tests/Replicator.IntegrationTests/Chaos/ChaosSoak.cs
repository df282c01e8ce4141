using System.Diagnostics;
using System.Globalization;
using System.Text;
using Replicator.IntegrationTests.Harness;

namespace Replicator.IntegrationTests.Chaos;

/// <summary>What a chaos soak did and found.</summary>
internal sealed record ChaosReport(
    TimeSpan Duration,
    int Seed,
    IReadOnlyDictionary<ChaosFault, int> Faults,
    int Jobs,
    int FailedJobs,
    long WrittenBytes,
    TimeSpan LongestIo,
    TimeSpan LongestRecovery,
    int Resyncs,
    long ResentBytes,
    int RegionsChecked,
    IReadOnlyList<string> Lost,
    long Differences,
    IReadOnlyList<string> Log)
{
    public string Table()
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"chaos soak: {Duration.TotalMinutes:0.0} min of faults, seed {Seed}");
        text.AppendLine();
        text.AppendLine("| fault | injected |");
        text.AppendLine("|---|---:|");
        foreach (var (fault, count) in Faults.OrderBy(f => f.Key))
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| {Describe(fault)} | {count} |");
        }

        text.AppendLine();
        text.AppendLine("| result | value |");
        text.AppendLine("|---|---:|");
        text.AppendLine(CultureInfo.InvariantCulture, $"| fio jobs through the gateway (64 MiB random writes, crc32c, read back) | {Jobs} |");
        text.AppendLine(CultureInfo.InvariantCulture, $"| data written by the client | {WrittenBytes / (1024.0 * 1024 * 1024):0.00} GiB |");
        text.AppendLine(CultureInfo.InvariantCulture, $"| jobs that saw an I/O error or lost their connection (the gateway killed under them) | {FailedJobs} |");
        text.AppendLine(CultureInfo.InvariantCulture, $"| longest single I/O (stall seen by the client) | {LongestIo.TotalSeconds:0.00} s |");
        text.AppendLine(CultureInfo.InvariantCulture, $"| longest time from a healed fault to both replicas in sync | {LongestRecovery.TotalSeconds:0.0} s |");
        text.AppendLine(CultureInfo.InvariantCulture, $"| resyncs completed | {Resyncs} |");
        text.AppendLine(CultureInfo.InvariantCulture, $"| bytes resent by resyncs | {ResentBytes / (1024.0 * 1024):0.0} MiB |");
        text.AppendLine(CultureInfo.InvariantCulture, $"| acknowledged regions checked on the gateway, node a and node b | {RegionsChecked} |");
        text.AppendLine(CultureInfo.InvariantCulture, $"| acknowledged writes lost | {Lost.Count} |");
        text.AppendLine(CultureInfo.InvariantCulture, $"| replicas identical (replicator verify) | {(Differences == 0 ? "yes" : $"no: {Differences} bytes differ")} |");
        return text.ToString();
    }

    private static string Describe(ChaosFault fault) => fault switch
    {
        ChaosFault.KillNode => "kill -9 of a node",
        ChaosFault.KillGateway => "kill -9 of the gateway",
        ChaosFault.KillWitness => "kill -9 of the witness",
        ChaosFault.CutLink => "peer link cut (2-6 s)",
        ChaosFault.FlapLink => "peer link flapping (5 cuts)",
        ChaosFault.FillPool => "pool file system full on node b",
        ChaosFault.StopNode => "SIGSTOP of a node (2-6 s)",
        _ => fault.ToString(),
    };
}

/// <summary>
/// A cluster under a client's writes while faults come one after another: each is injected, held, healed,
/// and the soak waits until both replicas are in sync before the next. At the end every region the client
/// wrote whole and had acknowledged is read back through the gateway and from each node, and
/// <c>replicator verify</c> compares the replicas.
/// </summary>
internal static class ChaosSoak
{
    private static readonly TimeSpan RecoveryLimit = TimeSpan.FromMinutes(3);

    public static async Task<ChaosReport> RunAsync(TimeSpan duration, int seed, Action<string> log)
    {
        var random = new Random(seed);
        var lines = new List<string>();
        void Log(string line)
        {
            var stamped = $"{DateTime.UtcNow:HH:mm:ss} {line}";
            lines.Add(stamped);
            log(stamped);
        }

        await using var cluster = await TestCluster.StartForChaosAsync("b", 1L << 30);
        await using var faults = new ChaosFaults(cluster, new Random(seed + 1));
        var volume = await cluster.CreateVolumeAsync("chaos", "1G", preferred: "a");
        var workload = new ChaosWorkload(cluster, volume, new Random(seed + 2));
        var resyncs = new ResyncCounter(cluster, volume);
        var injected = Enum.GetValues<ChaosFault>().ToDictionary(f => f, _ => 0);
        var longestRecovery = TimeSpan.Zero;

        using var stop = new CancellationTokenSource();
        var clock = Stopwatch.StartNew();
        var client = Task.Run(() => workload.RunAsync(stop.Token));
        try
        {
            // Every kind once in a shuffled order, then again, so a short run still sees each kind.
            var order = new Queue<ChaosFault>();
            while (clock.Elapsed < duration && !client.IsCompleted)
            {
                if (order.Count == 0)
                {
                    foreach (var next in Enum.GetValues<ChaosFault>().OrderBy(_ => random.Next()))
                    {
                        order.Enqueue(next);
                    }
                }

                await Task.Delay(random.Next(1000, 4000));
                var fault = order.Dequeue();
                Log(await faults.InjectAsync(fault));
                injected[fault]++;
                var healed = Stopwatch.StartNew();
                await cluster.WaitInSyncAsync(volume, RecoveryLimit);
                longestRecovery = healed.Elapsed > longestRecovery ? healed.Elapsed : longestRecovery;
                await resyncs.SampleAsync();
                Log($"in sync again after {healed.Elapsed.TotalSeconds:0.0} s");
            }
        }
        finally
        {
            await stop.CancelAsync();
            await client.WaitAsync(TimeSpan.FromMinutes(3));
        }

        var elapsed = clock.Elapsed;
        foreach (var error in workload.Errors)
        {
            Log("client: " + error);
        }

        await cluster.WaitInSyncAsync(volume, RecoveryLimit);
        await resyncs.SampleAsync();
        var lost = new List<string>();
        var checkedRegions = 0;
        foreach (var (name, uri) in new (string, Func<string, string>)[]
                 {
                     ("gateway", cluster.GatewayUri), ("node a", v => cluster.UnixUri("a", v)), ("node b", v => cluster.UnixUri("b", v)),
                 })
        {
            var (count, missing) = await workload.VerifyAsync(uri);
            checkedRegions = count;
            lost.AddRange(missing.Select(m => $"{name}: {m}"));
        }

        var differences = await cluster.VerifyAsync(volume);
        return new ChaosReport(elapsed, seed, injected, workload.Jobs, workload.FailedJobs, workload.WrittenBytes, workload.LongestIo,
            longestRecovery, resyncs.Completed, resyncs.SentBytes, checkedRegions, lost, differences, lines);
    }

    /// <summary>
    /// Resyncs completed and bytes they sent, summed over every node process the soak saw (a node's counters
    /// start again at zero when it is killed and started again).
    /// </summary>
    private sealed class ResyncCounter(TestCluster cluster, string volume)
    {
        private readonly Dictionary<int, (int Completed, long Sent)> _byProcess = [];

        public int Completed => _byProcess.Values.Sum(v => v.Completed);

        public long SentBytes => _byProcess.Values.Sum(v => v.Sent);

        public async Task SampleAsync()
        {
            foreach (var node in new[] { "a", "b" })
            {
                var state = await cluster.VolumeAsync(node, volume);
                _byProcess[cluster.Pid(node)] = (state.ResyncsCompleted, state.ResyncSentBytes);
            }
        }
    }
}

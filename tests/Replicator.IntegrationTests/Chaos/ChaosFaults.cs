using Replicator.IntegrationTests.Harness;

namespace Replicator.IntegrationTests.Chaos;

/// <summary>The faults the chaos soak injects, one at a time.</summary>
public enum ChaosFault
{
    /// <summary>SIGKILL of a node; started again by hand a moment later.</summary>
    KillNode,

    /// <summary>SIGKILL of the gateway; <c>cluster up</c> starts it again (its clients' connections die with it).</summary>
    KillGateway,

    /// <summary>SIGKILL of the witness; started again by hand a moment later.</summary>
    KillWitness,

    /// <summary>The link between the nodes cut for a few seconds.</summary>
    CutLink,

    /// <summary>The link between the nodes cut and healed five times in a few seconds.</summary>
    FlapLink,

    /// <summary>The small file system under node b's pool filled to a few MiB, then freed.</summary>
    FillPool,

    /// <summary>SIGSTOP of a node for a few seconds, then SIGCONT.</summary>
    StopNode,
}

/// <summary>
/// Injects one <see cref="ChaosFault"/> into a cluster made by <see cref="TestCluster.StartForChaosAsync"/>, holds it
/// a random few seconds and heals it. Every process it starts (a witness started again) it ends by pid.
/// </summary>
internal sealed class ChaosFaults(TestCluster cluster, Random random) : IAsyncDisposable
{
    private const int SigStop = 19;
    private const int SigCont = 18;
    private const long PoolLeftFree = 8L << 20;

    private ReplicatorProcess? _witness;

    /// <summary>Applies <paramref name="fault"/>, holds it, heals it; returns what was done, for the log.</summary>
    public async Task<string> InjectAsync(ChaosFault fault)
    {
        var node = random.Next(2) == 0 ? "a" : "b";
        var hold = TimeSpan.FromMilliseconds(random.Next(2000, 6000));
        switch (fault)
        {
            case ChaosFault.KillNode:
                await cluster.KillAsync(node);
                await Task.Delay(hold);
                await cluster.RestartAsync(node);
                return $"kill -9 node {node}, started again after {hold.TotalSeconds:0.0} s";
            case ChaosFault.KillGateway:
                var took = await cluster.KillGatewayAndWaitForItsRestartAsync();
                return $"kill -9 gateway, cluster up started it again in {took.TotalSeconds:0.0} s";
            case ChaosFault.KillWitness:
                await KillWitnessAsync();
                await Task.Delay(hold);
                await StartWitnessAsync();
                return $"kill -9 witness, started again after {hold.TotalSeconds:0.0} s";
            case ChaosFault.CutLink:
                cluster.PeerLink!.Cut();
                await Task.Delay(hold);
                cluster.PeerLink.Heal();
                return $"peer link cut for {hold.TotalSeconds:0.0} s";
            case ChaosFault.FlapLink:
                for (var i = 0; i < 5; i++)
                {
                    cluster.PeerLink!.Cut();
                    await Task.Delay(random.Next(100, 600));
                    cluster.PeerLink.Heal();
                    await Task.Delay(random.Next(300, 1200));
                }

                return "peer link flapped 5 times";
            case ChaosFault.FillPool:
                await cluster.SmallPool!.FillAsync(PoolLeftFree);
                await Task.Delay(hold * 2);
                cluster.SmallPool.RemoveBallast();
                return $"node b's pool file system filled for {(hold * 2).TotalSeconds:0.0} s";
            case ChaosFault.StopNode:
                var pid = cluster.Pid(node);
                ReplicatorProcess.SignalPid(pid, SigStop);
                try
                {
                    await Task.Delay(hold);
                }
                finally
                {
                    ReplicatorProcess.SignalPid(pid, SigCont);
                }

                return $"SIGSTOP node {node} for {hold.TotalSeconds:0.0} s";
            default:
                throw new ArgumentOutOfRangeException(nameof(fault), fault, null);
        }
    }

    /// <summary>Undoes whatever a fault cut short left behind (a test failing in the middle of one).</summary>
    public async ValueTask DisposeAsync()
    {
        cluster.PeerLink?.Heal();
        if (cluster.SmallPool is { } pool && File.Exists(pool.BallastPath))
        {
            pool.RemoveBallast();
        }

        if (_witness is not null)
        {
            await _witness.DisposeAsync();
        }
    }

    private async Task KillWitnessAsync()
    {
        if (_witness is not null)
        {
            await _witness.KillAsync();
            await _witness.DisposeAsync();
            _witness = null;
            return;
        }

        using var handle = System.Diagnostics.Process.GetProcessById(cluster.Manifest.GetProperty("witness").GetProperty("pid").GetInt32());
        handle.Kill();
        await handle.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
    }

    private async Task StartWitnessAsync()
    {
        var directory = Path.Combine(cluster.Directory, "witness");
        _witness = ReplicatorProcess.Start(
            ["witness", "--dir", directory, "--listen", cluster.Manifest.GetProperty("witness").GetProperty("address").GetString()!,
                "--tls", Path.Combine(directory, "tls"), "--revocation-list", Path.Combine(cluster.Directory, "tls", "revoked.json")],
            Path.Combine(directory, "test-restart.log"));
        await _witness.WaitForOutputAsync("Witness ready", TimeSpan.FromSeconds(30));
    }
}

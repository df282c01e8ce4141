using Replicator.Core.Storage;
using Replicator.Node.Admin;
using Replicator.Node.Cli;
using Replicator.Node.Cluster;
using Replicator.Node.Configuration;
using Replicator.Node.Gateway;
using Replicator.Node.Security;
using Replicator.Protocol.Security;

namespace Replicator.Node.Roles;

internal sealed record ClusterUpSettings(string Directory, long VolumeSize, long PoolSize, bool Witness);

/// <summary>
/// <c>replicator cluster up --dir DIR</c>: the embedded default. Starts both nodes of a pair on
/// loopback as child processes, creates <c>vol0</c> unless it exists, then starts a gateway in front of
/// them, writes <c>DIR/cluster.json</c>, and stays in the foreground until Ctrl-C or SIGTERM, then stops
/// its children cleanly (the gateway first). A gateway that dies on its own is started again (see
/// <see cref="WatchChildrenAsync"/>); a node or the witness is reported and left down.
/// </summary>
internal static class ClusterRole
{
    public const string DefaultVolume = "vol0";
    private const string GatewayName = "gateway";
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan PairTimeout = TimeSpan.FromSeconds(30);

    /// <summary>A gateway that lived this long before it died is started again at once; one that dies younger waits 1 s, doubling.</summary>
    private static readonly TimeSpan GatewayHealthyLifetime = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan MaxGatewayRestartDelay = TimeSpan.FromSeconds(30);

    public static async Task<int> UpAsync(ClusterUpSettings settings, CancellationToken ct)
    {
        var directory = Path.GetFullPath(settings.Directory);
        PhysicalFileSystem.Instance.CreateDirectory(directory);
        var nodes = ClusterLayout.Ensure(directory, settings.PoolSize, settings.Witness);
        var tokenPath = Path.Combine(directory, ClusterLayout.TokenFileName);
        var token = AdminToken.LoadOrCreate(tokenPath);
        var parent = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var witnessAddress = ClusterLayout.WitnessAddress(directory);

        var children = new List<ChildProcess>();
        ChildProcess? witness = null;
        try
        {
            if (witnessAddress is not null)
            {
                var witnessDir = Path.Combine(directory, ClusterLayout.WitnessDirectoryName);
                witness = ChildProcess.Start("witness",
                    ["witness", "--dir", witnessDir, "--listen", witnessAddress, "--tls", ClusterLayout.WitnessTlsDirectory(directory),
                        "--revocation-list", ClusterLayout.RevocationListPath(directory), "--parent-pid", parent],
                    Path.Combine(witnessDir, "witness.log"));
                children.Add(witness);
                using var probe = new AdminClient(AdminHttps(directory, new Uri($"https://{witnessAddress}"), IdentityRole.Witness));
                await WaitReadyAsync(probe, witness, "/votes", ct);
            }

            foreach (var (nodeDir, config) in nodes)
            {
                children.Add(ChildProcess.Start(config.Name,
                    ["node", "run", "--dir", nodeDir, "--parent-pid", parent],
                    Path.Combine(nodeDir, "node.log")));
            }

            var clients = nodes.Select(n => new AdminClient(new Uri($"http://{n.Config.AdminListen}"), token, TimeSpan.FromSeconds(10))).ToList();
            foreach (var (client, child) in clients.Zip(children.Where(c => c != witness)))
            {
                await WaitReadyAsync(client, child, "/node", ct);
            }

            var volumes = await EnsureDefaultVolumeAsync(clients[0], settings.VolumeSize, ct);
            await WaitPairedAsync(clients, volumes, ct);
            var manifest = new ClusterManifest
            {
                ClusterId = nodes[0].Config.ClusterId,
                AdminTokenFile = tokenPath,
                Volumes = volumes,
                Witness = witness is null ? null : new ClusterProcessEntry(witness.Pid, witnessAddress!),
                Tls = new ClusterTlsEntry(ClusterLayout.ClientTlsDirectory(directory)),
                Nodes = nodes.Zip(children.Where(c => c != witness), (n, child) => new ClusterNodeEntry
                {
                    Name = n.Config.Name,
                    Pid = child.Pid,
                    Nbd = n.Config.Nbd.TcpUri(n.Config.NbdListen),
                    NbdSocket = n.Config.SocketPath(n.Directory),
                    Admin = $"http://{n.Config.AdminListen}",
                    DataDir = n.Directory,
                    Peer = n.Config.Peer!.Listen ?? n.Config.Peer.Address!,
                }).ToList(),
            };
            manifest.Save(directory);
            manifest = manifest with { Gateway = await StartGatewayAsync(directory, token, parent, children, ct) };
            manifest.Save(directory);
            PrintAttachInfo(directory, manifest);

            await WatchChildrenAsync(children, async () =>
            {
                var gateway = await StartGatewayAsync(directory, token, parent, children, ct);
                manifest = manifest with { Gateway = gateway };
                manifest.Save(directory);
                return gateway;
            }, ct);
            return ExitCodes.Ok;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return ExitCodes.Ok;
        }
        finally
        {
            Console.WriteLine("stopping the cluster...");
            await Task.WhenAll(children.Where(c => c.Name == GatewayName).Select(c => c.StopAsync(StopGrace)));
            await Task.WhenAll(children.Select(c => c.StopAsync(StopGrace)));
            foreach (var child in children)
            {
                Console.WriteLine($"{child.Name} stopped (exit code {child.ExitCode})");
                child.Dispose();
            }
        }
    }

    /// <summary>An HTTPS client of a member of the cluster with the administrator's certificate (<c>DIR/tls/admin</c>).</summary>
    private static HttpClient AdminHttps(string directory, Uri address, IdentityRole serverRole)
    {
        var credentials = new TlsDirectory(ClusterLayout.AdminTlsDirectory(directory), client: true);
        var trust = new ClusterTrust(credentials.Load().Identity.ClusterId, () => credentials.Load().Authorities, new RevocationList(ClusterLayout.RevocationListPath(directory)));
        return ClusterHttps.CreateClient(address, credentials, trust, serverRole, TimeSpan.FromSeconds(10));
    }

    /// <summary>
    /// Starts the gateway once the nodes serve. Its status endpoint answers only after its NBD server listens
    /// (hosted services start before the web server), so an answer means the volumes are exported.
    /// </summary>
    /// <remarks>A gateway that does not come up is stopped and taken off <paramref name="children"/> before the error goes on.</remarks>
    private static async Task<ClusterGatewayEntry> StartGatewayAsync(string directory, string token, string parent, List<ChildProcess> children, CancellationToken ct)
    {
        var config = GatewayConfig.EnsureForCluster(directory);
        var gateway = ChildProcess.Start(GatewayName, ["gateway", "--cluster", directory, "--parent-pid", parent], Path.Combine(directory, "gateway.log"));
        children.Add(gateway);
        var admin = $"http://{config.AdminListen}";
        using var client = new AdminClient(new Uri(admin), token, TimeSpan.FromSeconds(10));
        try
        {
            await WaitReadyAsync(client, gateway, "/gateway", ct);
        }
        catch (CliException)
        {
            await gateway.StopAsync(StopGrace);
            children.Remove(gateway);
            gateway.Dispose();
            throw;
        }

        return new ClusterGatewayEntry { Pid = gateway.Pid, NbdSocket = config.SocketPath(directory), Nbd = config.TcpUri ?? "", Admin = admin };
    }

    private static async Task WaitReadyAsync(AdminClient client, ChildProcess child, string probe, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + StartTimeout;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            if (child.HasExited)
            {
                throw new CliException(ExitCodes.Failed, $"{child.Name} exited with code {child.ExitCode} while starting; see {child.LogPath}");
            }

            try
            {
                await client.GetAsync<System.Text.Json.JsonElement>(probe, ct);
                return;
            }
            catch (CliException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(100, ct);
            }
            catch (CliException e)
            {
                throw new CliException(ExitCodes.Failed, $"{child.Name} did not come up within {StartTimeout.TotalSeconds} s ({e.Message}); see {child.LogPath}");
            }
        }
    }

    /// <summary>
    /// Waits (bounded) until both nodes replicate every volume, so that a write made once the cluster says
    /// it is up reaches both replicas instead of being recorded for a later resync. A pair that does not
    /// connect in time is reported and the cluster comes up degraded: the nodes keep trying on their own.
    /// </summary>
    private static async Task WaitPairedAsync(List<AdminClient> clients, List<string> volumes, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + PairTimeout;
        List<string> unpaired;
        while (true)
        {
            unpaired = [];
            foreach (var client in clients)
            {
                try
                {
                    var listed = await client.GetAsync<List<VolumeInfo>>("/volumes", ct);
                    unpaired.AddRange(volumes.Where(v => listed.FirstOrDefault(l => l.Name == v)?.Replication?.Connection != "connected"));
                }
                catch (CliException)
                {
                    unpaired.AddRange(volumes);
                }
            }

            if (unpaired.Count == 0 || DateTime.UtcNow >= deadline)
            {
                break;
            }

            await Task.Delay(100, ct);
        }

        if (unpaired.Count > 0)
        {
            Console.WriteLine($"warning: after {PairTimeout.TotalSeconds:0} s the nodes do not yet replicate {string.Join(", ", unpaired.Distinct())}; "
                + "writes go on degraded and are resynced once they connect (see each node's log)");
        }
    }

    private static async Task<List<string>> EnsureDefaultVolumeAsync(AdminClient client, long size, CancellationToken ct)
    {
        var volumes = await client.GetAsync<List<VolumeInfo>>("/volumes", ct);
        if (volumes.All(v => v.Name != DefaultVolume))
        {
            await client.PostAsync<VolumeInfo>("/volumes",
                new CreateVolumeRequest(DefaultVolume, size.ToString(System.Globalization.CultureInfo.InvariantCulture)) { PreferredNode = ClusterLayout.NodeNames[0] }, ct);
            volumes = await client.GetAsync<List<VolumeInfo>>("/volumes", ct);
        }

        return volumes.Select(v => v.Name).ToList();
    }

    private static void PrintAttachInfo(string directory, ClusterManifest manifest)
    {
        Console.WriteLine($"Replicator cluster is up in {directory} (cluster.json has every endpoint).");
        if (manifest.Gateway is { } gateway)
        {
            Console.WriteLine($"  gateway (pid {gateway.Pid}): nbd+unix:///<volume>?socket={gateway.NbdSocket}  or  {gateway.Nbd}/<volume>");
            Console.WriteLine($"           status {gateway.Admin}{GatewayRole.StatusPath}, log {Path.Combine(directory, "gateway.log")}");
        }

        foreach (var node in manifest.Nodes)
        {
            Console.WriteLine($"  node {node.Name} (pid {node.Pid}): {node.Nbd}/<volume>  or  nbd+unix:///<volume>?socket={node.NbdSocket}");
            Console.WriteLine($"           admin {node.Admin}, status page {node.Admin}/ (token in {Path.Combine(directory, ClusterLayout.TokenFileName)}), log {Path.Combine(node.DataDir, "node.log")}");
        }

        if (manifest.Tls is { } tls)
        {
            Console.WriteLine($"  nbds:// (TCP) needs TLS with the client certificates in {tls.ClientCertificates}: nbdinfo 'nbds://HOST:PORT/<volume>?tls-certificates={tls.ClientCertificates}',");
            Console.WriteLine($"           qemu --object tls-creds-x509,id=tls0,endpoint=client,dir={tls.ClientCertificates} with tls-creds=tls0 (docs/nbd-tls.md)");
        }

        foreach (var volume in manifest.Volumes)
        {
            Console.WriteLine(manifest.Gateway is { } g
                ? $"  volume {volume}: nbdinfo 'nbd+unix:///{volume}?socket={g.NbdSocket}'  (through the gateway, which rides through a node failure)"
                : $"  volume {volume}: nbdinfo 'nbd+unix:///{volume}?socket={manifest.Nodes[0].NbdSocket}'");
        }

        Console.WriteLine(manifest.Witness is { } w
            ? $"  witness (pid {w.Pid}) at {w.Address}: a node that loses its peer writes only with the witness's vote"
            : "  no witness: a node that loses its peer keeps writing; a split brain is possible and is detected on reconnect");
        Console.WriteLine("Press Ctrl-C to stop.");
    }

    /// <summary>
    /// Waits for Ctrl-C or SIGTERM. A gateway that exits on its own is started again, and <c>cluster.json</c>
    /// names its new pid: it keeps no state (the nodes hold the data, its routing follows their status), so a
    /// client that reconnects (QEMU's <c>reconnect-delay</c>) sees a pause. It starts again at once, or, when it
    /// dies (or fails to start) again within a minute of a start, after 1 s doubling to 30 s. A node or the
    /// witness that exits on its own is reported and left down: an admin or a test may have stopped it on
    /// purpose (<c>node run</c> brings it back).
    /// </summary>
    /// <param name="startGateway">Starts the gateway again, adds it to <paramref name="children"/>, waits until it serves and names it in <c>cluster.json</c>.</param>
    private static async Task WatchChildrenAsync(List<ChildProcess> children, Func<Task<ClusterGatewayEntry>> startGateway, CancellationToken ct)
    {
        var stop = Task.Delay(Timeout.Infinite, ct);
        var delay = TimeSpan.Zero;
        var lastStart = DateTime.MinValue;
        while (true)
        {
            var exited = children.Select(c => c.Exited).ToList();
            var done = await Task.WhenAny([stop, .. exited]);
            if (done == stop)
            {
                return;
            }

            var child = children[exited.IndexOf(done)];
            if (child.Name != GatewayName)
            {
                Console.WriteLine($"{child.Name} (pid {child.Pid}) exited on its own with code {child.ExitCode}; see {child.LogPath}. " +
                    "The cluster keeps running without it; restart it by hand (see cluster.json).");
                children.Remove(child);
                child.Dispose();
                continue;
            }

            children.Remove(child);
            Console.WriteLine($"gateway (pid {child.Pid}) exited on its own with code {child.ExitCode}; see {child.LogPath}.");
            child.Dispose();
            while (true)
            {
                delay = DateTime.UtcNow - lastStart >= GatewayHealthyLifetime ? TimeSpan.Zero
                    : TimeSpan.FromTicks(Math.Clamp(delay.Ticks * 2, TimeSpan.TicksPerSecond, MaxGatewayRestartDelay.Ticks));
                Console.WriteLine($"Starting the gateway again{(delay > TimeSpan.Zero ? $" in {delay.TotalSeconds:0} s" : "")}.");
                await Task.Delay(delay, ct);
                lastStart = DateTime.UtcNow;
                try
                {
                    Console.WriteLine($"gateway started again (pid {(await startGateway()).Pid}); cluster.json names it");
                    break;
                }
                catch (CliException e)
                {
                    Console.WriteLine($"the gateway did not start again: {e.Message}");
                }
            }
        }
    }
}

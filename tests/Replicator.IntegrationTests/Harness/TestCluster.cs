using System.Net.Http.Headers;
using System.Text.Json;

namespace Replicator.IntegrationTests.Harness;

/// <summary>
/// <c>replicator cluster up</c> run by a test in a temporary directory: two real node processes on
/// loopback, and the gateway in front of them. Nodes can be killed (SIGKILL, by pid) and started again by hand with
/// <c>node run --dir DIR/&lt;name&gt;</c>, as an admin would. Everything the test started is ended by pid.
/// </summary>
public sealed class TestCluster : IAsyncDisposable
{
    private readonly Dictionary<string, ReplicatorProcess> _restarted = [];
    private readonly Dictionary<string, TcpProxy> _witnessLinks = [];
    private readonly bool _ownsDirectory;
    private HttpClient? _http;

    private TestCluster(string directory, bool ownsDirectory)
    {
        Directory = directory;
        _ownsDirectory = ownsDirectory;
    }

    public string Directory { get; }

    public ReplicatorProcess Up { get; private set; } = null!;

    public JsonElement Manifest { get; private set; }

    public string Token => File.ReadAllText(Path.Combine(Directory, "admin.token")).Trim();

    public static async Task<TestCluster> StartAsync(string? directory = null, params string[] extraArguments)
    {
        var owns = directory is null;
        directory ??= System.IO.Directory.CreateTempSubdirectory("replicator-cluster-").FullName;
        var cluster = new TestCluster(directory, owns);
        await cluster.StartUpAsync(extraArguments);
        return cluster;
    }

    /// <summary>
    /// A cluster whose links go through relays the test can cut: the link between the nodes
    /// (<see cref="PeerLink"/>) and, with a witness, each node's link to it (<see cref="WitnessLink"/>).
    /// </summary>
    /// <param name="keepaliveTimeoutSeconds">A node's peer keepalive timeout, where the test wants one other than the default.</param>
    /// <param name="readLeaseSeconds">The read lease a node asks for, where the test wants one other than a quarter of its timeout.</param>
    public static async Task<TestCluster> StartWithCuttableLinksAsync(
        bool witness, IReadOnlyDictionary<string, double>? keepaliveTimeoutSeconds = null, IReadOnlyDictionary<string, double>? readLeaseSeconds = null)
    {
        var cluster = await InitAsync(witness);
        await cluster.RouteLinksThroughRelaysAsync(keepaliveTimeoutSeconds, readLeaseSeconds);
        await cluster.StartUpAsync([]);
        return cluster;
    }

    /// <summary>
    /// A cluster (with its witness) whose node <paramref name="node"/> keeps its pool on a small loop-mounted ext4
    /// file system of <paramref name="fileSystemBytes"/> (see <see cref="SmallPool"/>): its pool file, sparse and
    /// far larger, fills that file system for real.
    /// </summary>
    public static async Task<TestCluster> StartWithSmallPoolAsync(string node, long fileSystemBytes)
    {
        var cluster = await InitAsync(witness: true);
        await cluster.PutPoolOnSmallFileSystemAsync(node, fileSystemBytes);
        await cluster.StartUpAsync([]);
        return cluster;
    }

    /// <summary>
    /// Every fault at once: a witness, relays on the peer and witness links, and node <paramref name="smallPoolNode"/>'s
    /// pool on a small file system of <paramref name="fileSystemBytes"/> (the chaos soak).
    /// </summary>
    public static async Task<TestCluster> StartForChaosAsync(string smallPoolNode, long fileSystemBytes)
    {
        var cluster = await InitAsync(witness: true);
        await cluster.RouteLinksThroughRelaysAsync(null, null);
        await cluster.PutPoolOnSmallFileSystemAsync(smallPoolNode, fileSystemBytes);
        await cluster.StartUpAsync([]);
        return cluster;
    }

    private static async Task<TestCluster> InitAsync(bool witness)
    {
        var directory = System.IO.Directory.CreateTempSubdirectory("replicator-cluster-").FullName;
        var cluster = new TestCluster(directory, ownsDirectory: true);
        var init = await ReplicatorProcess.RunAsync(["cluster", "init", "--dir", directory, "--pool-size", "8G", .. witness ? Array.Empty<string>() : ["--no-witness"]]);
        if (init.ExitCode != 0)
        {
            System.IO.Directory.Delete(directory, recursive: true);
            Assert.Fail(init.Describe());
        }

        return cluster;
    }

    private async Task RouteLinksThroughRelaysAsync(IReadOnlyDictionary<string, double>? keepaliveTimeoutSeconds, IReadOnlyDictionary<string, double>? readLeaseSeconds)
    {
        foreach (var node in new[] { "a", "b" })
        {
            var path = Path.Combine(Directory, node, "node.json");
            var config = System.Text.Json.Nodes.JsonNode.Parse(await File.ReadAllTextAsync(path))!;
            if (config["peer"]!["address"]?.GetValue<string>() is { } peerAddress)
            {
                PeerLink = TcpProxy.Start(System.Net.IPEndPoint.Parse(peerAddress));
                config["peer"]!["address"] = PeerLink.EndPoint.ToString();
            }

            if (keepaliveTimeoutSeconds?.GetValueOrDefault(node) is { } keepalive and > 0)
            {
                config["peer"]!["keepaliveTimeoutSeconds"] = keepalive;
            }

            if (readLeaseSeconds?.GetValueOrDefault(node) is { } lease and > 0)
            {
                config["peer"]!["readLeaseSeconds"] = lease;
            }

            if (config["witness"]?["address"]?.GetValue<string>() is { } witnessAddress)
            {
                var proxy = TcpProxy.Start(System.Net.IPEndPoint.Parse(witnessAddress));
                _witnessLinks[node] = proxy;
                config["witness"]!["address"] = proxy.EndPoint.ToString();
            }

            await File.WriteAllTextAsync(path, config.ToJsonString());
        }
    }

    private async Task PutPoolOnSmallFileSystemAsync(string node, long fileSystemBytes)
    {
        SmallPool = await LoopFileSystem.MountAsync(Path.Combine(Directory, $"pool-{node}.img"), Path.Combine(Directory, $"pool-{node}.mnt"), fileSystemBytes);
        var pool = System.IO.Directory.CreateDirectory(Path.Combine(SmallPool.MountPoint, "pool")).FullName;
        System.IO.Directory.CreateSymbolicLink(Path.Combine(Directory, node, "pool"), pool);
    }

    /// <summary>The small file system under one node's pool, when started with one.</summary>
    public LoopFileSystem? SmallPool { get; private set; }

    /// <summary>The relay between node a (which dials) and node b, when started with cuttable links.</summary>
    public TcpProxy? PeerLink { get; private set; }

    /// <summary>The relay between a node and the witness, when started with cuttable links and a witness.</summary>
    public TcpProxy WitnessLink(string node) => _witnessLinks[node];

    /// <summary>A node's TCP export URI without an export name: <c>nbds://127.0.0.1:PORT</c> (TLS required).</summary>
    public string Nbd(string node) => Node(node).GetProperty("nbd").GetString()!;

    /// <summary>The client certificate directory cluster up made (cluster.json's <c>tls.clientCertificates</c>).</summary>
    public string ClientCertificates => Manifest.GetProperty("tls").GetProperty("clientCertificates").GetString()!;

    /// <summary>
    /// A volume on a node as any client reaches it without certificates: its Unix socket. (fio's nbd engine, and
    /// libnbd's URIs in nbdsh -u, take no certificate directory; the TCP exports require TLS, see <see cref="TlsUri"/>.)
    /// </summary>
    public string Uri(string node, string volume) => UnixUri(node, volume);

    /// <summary>
    /// A volume on a node over TCP, with TLS and the cluster's client certificates as nbdinfo reads them
    /// (<c>nbds://…?tls-certificates=DIR</c>); <see cref="SingleNode.RealClientTests.QemuIo"/> turns it into QEMU's options.
    /// </summary>
    public string TlsUri(string node, string volume) => WithCertificates($"{Nbd(node)}/{volume}");

    public string UnixUri(string node, string volume) => $"nbd+unix:///{volume}?socket={Node(node).GetProperty("nbdSocket").GetString()}";

    public string DataDir(string node) => Node(node).GetProperty("dataDir").GetString()!;

    public Uri Admin(string node) => new(Node(node).GetProperty("admin").GetString()!);

    /// <summary>A volume through the gateway's Unix socket, the way a hypervisor attaches it.</summary>
    public string GatewayUri(string volume) => $"nbd+unix:///{volume}?socket={GatewaySocket}";

    /// <summary>The gateway's Unix socket, where a client attaches.</summary>
    public string GatewaySocket => Gateway.GetProperty("nbdSocket").GetString()!;

    /// <summary>A volume through the gateway's loopback TCP port.</summary>
    public string GatewayTcpUri(string volume) => WithCertificates($"{Gateway.GetProperty("nbd").GetString()}/{volume}");

    /// <summary>An <c>nbds://</c> URI with the cluster's client certificates; a plain one as it is.</summary>
    private string WithCertificates(string uri) =>
        uri.StartsWith("nbds://", StringComparison.Ordinal) ? $"{uri}?tls-certificates={ClientCertificates}" : uri;

    /// <summary>The pid of the gateway, as <c>cluster.json</c> names it (re-read after cluster up started it again).</summary>
    public int GatewayPid => Gateway.GetProperty("pid").GetInt32();

    /// <summary>
    /// SIGKILLs the gateway and waits until cluster up has started it again, <c>cluster.json</c> names the new
    /// one and its status answers; returns how long that took from the kill.
    /// </summary>
    public async Task<TimeSpan> KillGatewayAndWaitForItsRestartAsync()
    {
        var killed = GatewayPid;
        using (var handle = System.Diagnostics.Process.GetProcessById(killed))
        {
            handle.Kill();
            await handle.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }

        var clock = System.Diagnostics.Stopwatch.StartNew();
        await WaitUntilAsync(async () =>
        {
            using var manifest = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(Directory, "cluster.json")));
            if (manifest.RootElement.GetProperty("gateway").GetProperty("pid").GetInt32() == killed)
            {
                return false;
            }

            Manifest = manifest.RootElement.Clone();
            (await GatewayStatusAsync()).Dispose();
            return true;
        }, TimeSpan.FromSeconds(30), "cluster up did not start the gateway again");
        return clock.Elapsed;
    }

    /// <summary>The gateway's status, <c>GET /api/v1/gateway</c> on its admin endpoint.</summary>
    public Task<JsonDocument> GatewayStatusAsync() => GetJsonAsync(new Uri(new Uri(Gateway.GetProperty("admin").GetString()!), "/api/v1/gateway"));

    /// <summary>The pid of the node's process now: the one cluster up started, or the one this test restarted.</summary>
    public int Pid(string node) => _restarted.TryGetValue(node, out var p) ? p.Pid : Node(node).GetProperty("pid").GetInt32();

    /// <summary>SIGKILL the node, and wait until it is gone.</summary>
    public async Task KillAsync(string node)
    {
        if (_restarted.Remove(node, out var process))
        {
            await process.KillAsync();
            await process.DisposeAsync();
            return;
        }

        var pid = Pid(node);
        using var handle = System.Diagnostics.Process.GetProcessById(pid);
        handle.Kill();
        await handle.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>SIGTERM the node and wait for it to exit cleanly.</summary>
    public async Task StopAsync(string node)
    {
        if (_restarted.Remove(node, out var process))
        {
            Assert.Equal(0, await process.StopAsync());
            await process.DisposeAsync();
            return;
        }

        using var handle = System.Diagnostics.Process.GetProcessById(Pid(node));
        ReplicatorProcess.SignalPid(handle.Id, ReplicatorProcess.SigTerm);
        await handle.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>Starts the node again by hand (<c>node run --dir DIR/&lt;node&gt;</c>) and waits until it serves.</summary>
    /// <param name="wrapper">A program that runs the node, such as <see cref="LibFiu.Wrapper"/>.</param>
    public async Task RestartAsync(string node, IReadOnlyList<string>? wrapper = null)
    {
        var process = ReplicatorProcess.Start(["node", "run", "--dir", DataDir(node)], Path.Combine(DataDir(node), "test-restart.log"), wrapper);
        _restarted[node] = process;
        await process.WaitForOutputAsync(" ready", TimeSpan.FromSeconds(30));
    }

    /// <summary>Runs a replicator CLI command against this cluster's directory.</summary>
    public Task<ToolResult> CliAsync(params string[] arguments) => ReplicatorProcess.RunAsync([.. arguments, "--dir", Directory], TimeSpan.FromMinutes(3));

    public async Task<string> CreateVolumeAsync(string name, string size = "256M", string? preferred = null)
    {
        var result = await CliAsync(["volume", "create", name, "--size", size, .. preferred is null ? Array.Empty<string>() : ["--preferred", preferred]]);
        Assert.True(result.ExitCode == 0, result.Describe());
        await WaitUntilAsync(async () => (await VolumeAsync("a", name)).Connection == "connected" && (await VolumeAsync("b", name)).Connection == "connected",
            TimeSpan.FromSeconds(30), $"volume {name} did not pair");
        return name;
    }

    /// <summary>A volume as a node's admin API reports it.</summary>
    public async Task<VolumeState> VolumeAsync(string node, string volume)
    {
        using var json = await GetJsonAsync(node, $"/api/v1/volumes/{volume}");
        var replication = json.RootElement.GetProperty("replication");
        var resync = replication.GetProperty("resync");
        return new VolumeState(
            replication.GetProperty("connection").GetString()!,
            replication.GetProperty("diskState").GetString()!,
            replication.GetProperty("outOfSyncBytes").GetInt64(),
            resync.GetProperty("sentBytes").GetInt64(),
            resync.GetProperty("completed").GetInt32(),
            json.RootElement.GetProperty("allocatedBytes").GetInt64())
        {
            ResyncCoveredBytes = resync.GetProperty("coveredBytes").GetInt64(),
        };
    }

    /// <summary>The node the witness gave the volume's vote to (waiting until one has it).</summary>
    public async Task<string> VoteHolderAsync(string volume)
    {
        using var info = await GetJsonAsync("a", $"/api/v1/volumes/{volume}");
        var id = info.RootElement.GetProperty("id").GetString();
        string? holder = null;
        await WaitUntilAsync(async () =>
        {
            using var view = await GetJsonAsync("b", "/api/v1/cluster");
            holder = view.RootElement.GetProperty("witness").GetProperty("votes").EnumerateArray()
                .Where(v => v.GetProperty("volume").GetString() == id).Select(v => v.GetProperty("holder").GetString()).FirstOrDefault();
            return holder is not null;
        }, TimeSpan.FromSeconds(15), "no node got the witness's vote");
        return holder!;
    }

    /// <summary>Waits until both replicas of the volume are connected, up to date and in sync.</summary>
    public Task WaitInSyncAsync(string volume, TimeSpan? timeout = null) =>
        WaitUntilAsync(async () =>
        {
            var a = await VolumeAsync("a", volume);
            var b = await VolumeAsync("b", volume);
            return a.InSync && b.InSync;
        }, timeout ?? TimeSpan.FromSeconds(60), $"volume {volume} did not get back in sync", () => Task.FromResult(LogTails()));

    /// <summary>
    /// The last lines each process of the cluster logged (the nodes, as cluster up or this test started them, and
    /// the gateway), for a failure message: a wait that times out in CI is otherwise a riddle.
    /// </summary>
    public string LogTails(int lines = 40)
    {
        var logs = new[] { "a", "b" }
            .SelectMany(node => new[] { Path.Combine(DataDir(node), "node.log"), Path.Combine(DataDir(node), "test-restart.log") })
            .Append(Path.Combine(Directory, "gateway.log"));
        var text = new System.Text.StringBuilder();
        foreach (var log in logs.Where(File.Exists))
        {
            text.Append("--- last ").Append(lines).Append(" lines of ").AppendLine(log);
            try
            {
                foreach (var line in File.ReadLines(log).TakeLast(lines))
                {
                    text.AppendLine(line);
                }
            }
            catch (IOException e)
            {
                text.AppendLine(e.Message);
            }
        }

        return text.ToString();
    }

    /// <summary>Runs <c>replicator verify</c> and returns the number of differing regions it reported.</summary>
    public async Task<long> VerifyAsync(string volume)
    {
        var result = await CliAsync("verify", volume, "--json");
        Assert.True(result.ExitCode is 0 or 1, result.Describe());
        using var json = JsonDocument.Parse(result.Stdout);
        var differing = json.RootElement.GetProperty("differingRegions").GetInt64();
        Assert.Equal(differing == 0 ? 0 : 1, result.ExitCode);
        return differing;
    }

    /// <summary>Sends a JSON request to a node's admin API and returns the answer (failing the test on an error status).</summary>
    public async Task<JsonDocument> SendJsonAsync(string node, HttpMethod method, string path, object? body = null)
    {
        _http ??= new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        using var request = new HttpRequestMessage(method, new Uri(Admin(node), path));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        if (body is not null)
        {
            request.Content = System.Net.Http.Json.JsonContent.Create(body);
        }

        using var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{method} {path} on {node}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text.Length == 0 ? "{}" : text);
    }

    public Task<JsonDocument> GetJsonAsync(string node, string path) => GetJsonAsync(new Uri(Admin(node), path));

    public async Task<JsonDocument> GetJsonAsync(Uri uri) => JsonDocument.Parse(await GetTextAsync(uri));

    /// <summary>GET with the cluster's token; fails the test unless it succeeds (and, when named, with that media type).</summary>
    public async Task<string> GetTextAsync(Uri uri, string? mediaType = null)
    {
        _http ??= new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        using var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"GET {uri}: {(int)response.StatusCode} {text}");
        if (mediaType is not null)
        {
            Assert.Equal(mediaType, response.Content.Headers.ContentType?.MediaType);
        }

        return text;
    }

    /// <summary>Polls <paramref name="condition"/> until it holds; past <paramref name="timeout"/> fails, with what <paramref name="explain"/> says, if given.</summary>
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what, Func<Task<string>>? explain = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                if (await condition())
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }

            if (DateTime.UtcNow >= deadline)
            {
                Assert.Fail($"{what} within {timeout.TotalSeconds} s" + (explain is null ? "" : $"\n{await explain()}"));
            }

            await Task.Delay(100);
        }
    }

    /// <summary>Stops cluster up (and with it the nodes it started) cleanly; the directory stays.</summary>
    public async Task ShutdownAsync()
    {
        foreach (var process in _restarted.Values)
        {
            await process.StopAsync();
            await process.DisposeAsync();
        }

        _restarted.Clear();
        if (!Up.HasExited)
        {
            Assert.Equal(0, await Up.StopAsync(TimeSpan.FromSeconds(60)));
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var process in _restarted.Values)
        {
            await process.DisposeAsync();
        }

        if (!Up.HasExited)
        {
            await Up.StopAsync(TimeSpan.FromSeconds(60));
        }

        await Up.DisposeAsync();
        _http?.Dispose();
        if (PeerLink is not null)
        {
            await PeerLink.DisposeAsync();
        }

        foreach (var link in _witnessLinks.Values)
        {
            await link.DisposeAsync();
        }

        if (SmallPool is not null)
        {
            await SmallPool.DisposeAsync();
        }

        if (_ownsDirectory)
        {
            try
            {
                if (Environment.GetEnvironmentVariable("REPLICATOR_KEEP_TEST_DIRS") is null)
                {
                    System.IO.Directory.Delete(Directory, recursive: true);
                }
            }
            catch (IOException)
            {
            }
        }
    }

    public JsonElement Gateway => Manifest.GetProperty("gateway");

    private JsonElement Node(string name) =>
        Manifest.GetProperty("nodes").EnumerateArray().First(n => n.GetProperty("name").GetString() == name);

    private async Task StartUpAsync(string[] extraArguments)
    {
        Up = ReplicatorProcess.Start(["cluster", "up", "--dir", Directory, "--pool-size", "8G", .. extraArguments], Path.Combine(Directory, "test-cluster-up.log"));
        await Up.WaitForOutputAsync("Press Ctrl-C", TimeSpan.FromSeconds(60));
        Manifest = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(Directory, "cluster.json"))).RootElement.Clone();
    }
}

public sealed record VolumeState(string Connection, string DiskState, long OutOfSyncBytes, long ResyncSentBytes, int ResyncsCompleted, long AllocatedBytes)
{
    public long ResyncCoveredBytes { get; init; }

    public bool InSync => Connection == "connected" && DiskState == "up-to-date" && OutOfSyncBytes == 0;
}

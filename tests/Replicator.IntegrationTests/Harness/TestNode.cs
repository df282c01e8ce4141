using System.Net;
using System.Text.Json;

namespace Replicator.IntegrationTests.Harness;

/// <summary>
/// One storage node run by a test in its own temporary directory, on ephemeral loopback ports.
/// Restartable (same directory, same ports), killable with SIGKILL; removed with its directory on dispose.
/// </summary>
public sealed class TestNode : IAsyncDisposable
{
    private readonly bool _ownsDirectory;

    private TestNode(string directory, bool ownsDirectory)
    {
        Directory = directory;
        _ownsDirectory = ownsDirectory;
    }

    public string Directory { get; }

    public ReplicatorProcess? Process { get; private set; }

    public string LogPath => Path.Combine(Directory, "test-node.log");

    public string SocketPath => Path.Combine(Directory, "nbd.sock");

    /// <summary><c>nbd://127.0.0.1:PORT</c> (no export name).</summary>
    public string NbdTcp { get; private set; } = "";

    public Uri Admin { get; private set; } = null!;

    public string Token => File.ReadAllText(Path.Combine(Directory, "admin.token")).Trim();

    public static async Task<TestNode> StartAsync(string? poolSize = "4G", params string[] extraArguments)
    {
        var directory = System.IO.Directory.CreateTempSubdirectory("replicator-node-").FullName;
        var node = new TestNode(directory, ownsDirectory: true);
        // A node of its own, with no cluster and so no certificates: plain TCP on loopback, chosen explicitly.
        var args = new List<string> { "--nbd-listen", "127.0.0.1:0", "--nbd-tls", "off", "--admin-listen", "127.0.0.1:0" };
        if (poolSize is not null)
        {
            args.AddRange(["--pool-size", poolSize]);
        }

        args.AddRange(extraArguments);
        await node.RunAsync(args);
        return node;
    }

    /// <summary>An export URI over TCP.</summary>
    public string Uri(string volume) => $"{NbdTcp}/{volume}";

    /// <summary>An export URI over the node's Unix socket.</summary>
    public string UnixUri(string volume) => $"nbd+unix:///{volume}?socket={SocketPath}";

    /// <summary>Starts the node again on the same directory (after a kill or stop).</summary>
    public Task RestartAsync() => RunAsync([]);

    public async Task KillAsync()
    {
        await Process!.KillAsync();
    }

    public async Task<int> StopAsync() => await Process!.StopAsync();

    /// <summary>Runs a replicator CLI command against this node's directory.</summary>
    public Task<ToolResult> CliAsync(params string[] arguments) =>
        ReplicatorProcess.RunAsync(arguments.Concat(["--dir", Directory]));

    public async Task<string> CreateVolumeAsync(string name, string size)
    {
        var result = await CliAsync("volume", "create", name, "--size", size);
        Assert.True(result.ExitCode == 0, result.Describe());
        return name;
    }

    public async ValueTask DisposeAsync()
    {
        if (Process is not null)
        {
            await Process.DisposeAsync();
        }

        if (_ownsDirectory)
        {
            try
            {
                System.IO.Directory.Delete(Directory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private async Task RunAsync(IEnumerable<string> extra)
    {
        if (Process is not null)
        {
            await Process.DisposeAsync();
        }

        Process = ReplicatorProcess.Start(["node", "run", "--dir", Directory, .. extra], LogPath);
        await Process.WaitForOutputAsync(" ready", TimeSpan.FromSeconds(30));
        using var config = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(Directory, "node.json")));
        var nbd = IPEndPoint.Parse(config.RootElement.GetProperty("nbdListen").GetString()!);
        var admin = IPEndPoint.Parse(config.RootElement.GetProperty("adminListen").GetString()!);
        Assert.NotEqual(0, nbd.Port);
        Assert.NotEqual(0, admin.Port);
        NbdTcp = $"nbd://{nbd}";
        Admin = new Uri($"http://{admin}");
    }
}

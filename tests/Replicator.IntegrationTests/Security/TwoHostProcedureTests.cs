using System.Text.Json;
using Replicator.IntegrationTests.Harness;
using Replicator.Node.Cluster;

namespace Replicator.IntegrationTests.Security;

/// <summary>
/// The two-host procedure of docs/security.md, run on loopback: <c>scripts/pair-hosts.sh</c> issues
/// the bundles on one machine, each node's directory is copied elsewhere (its "host"), and each node
/// starts from its copy with the start script written beside it.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class TwoHostProcedureTests : IAsyncDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("replicator-two-hosts-").FullName;
    private readonly List<ReplicatorProcess> _processes = [];

    [Fact]
    public async Task Bundles_issued_on_one_machine_pair_two_nodes_that_start_from_their_copies_over_an_encrypted_link()
    {
        var issued = Path.Combine(_directory, "issued");
        var prepare = await ExternalTool.RunAsync("bash", [Path.Combine(RepositoryRoot(), "scripts", "pair-hosts.sh"), "--out", issued,
            "--node", $"a=127.0.0.1:{ClusterLayout.FreePort()}", "--node", $"b=127.0.0.1:{ClusterLayout.FreePort()}", "--encryption", "tls"],
            TimeSpan.FromMinutes(2), environment: new Dictionary<string, string> { ["REPLICATOR"] = $"dotnet {ReplicatorProcess.AssemblyPath}" });
        Assert.True(prepare.ExitCode == 0, prepare.Describe());
        Assert.Contains("keep ca-key.pem on this machine", prepare.Stdout, StringComparison.Ordinal);

        // "scp -rp" to each host: the key stays readable by its owner only.
        foreach (var node in new[] { "a", "b" })
        {
            var host = Path.Combine(_directory, "host-" + node);
            Assert.Equal(0, (await ExternalTool.RunAsync("cp", ["-rp", Path.Combine(issued, node), host])).ExitCode);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(host, "tls", "server-key.pem")));
        }

        foreach (var node in new[] { "b", "a" })
        {
            var host = Path.Combine(_directory, "host-" + node);
            var process = ReplicatorProcess.StartScript(Path.Combine(host, "start.sh"),
                ["--nbd-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--pool-size", "4G"], Path.Combine(_directory, node + ".log"));
            _processes.Add(process);
            await process.WaitForOutputAsync(" ready", TimeSpan.FromSeconds(60));
        }

        await _processes[1].WaitForOutputAsync("Connected to peer b", TimeSpan.FromSeconds(60));
        Assert.Contains("encrypted (TLS 1.3)", _processes[1].Output, StringComparison.Ordinal);
        var create = await ReplicatorProcess.RunAsync(["volume", "create", "v", "--size", "64M", "--dir", Path.Combine(_directory, "host-a")]);
        Assert.True(create.ExitCode == 0, create.Describe());
        var status = await ReplicatorProcess.RunAsync(["status", "--json", "--dir", Path.Combine(_directory, "host-a")]);
        Assert.True(status.ExitCode == 0, status.Describe());
        using var json = JsonDocument.Parse(status.Stdout);
        var self = json.RootElement.EnumerateArray().First(n => n.GetProperty("name").GetString() == "a");
        Assert.True(self.GetProperty("node").GetProperty("peer").GetProperty("encrypted").GetBoolean());
        Assert.Equal(1, self.GetProperty("node").GetProperty("peer").GetProperty("connects").GetInt32());
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var process in _processes)
        {
            await process.DisposeAsync();
        }

        Directory.Delete(_directory, recursive: true);
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Replicator.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"no Replicator.sln above {AppContext.BaseDirectory}");
    }
}

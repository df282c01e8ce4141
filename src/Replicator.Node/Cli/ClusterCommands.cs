using System.CommandLine;
using Replicator.Core.Storage;
using Replicator.Core;
using Replicator.Node.Cluster;
using Replicator.Node.Roles;

namespace Replicator.Node.Cli;

/// <summary><c>replicator cluster init|up</c> and <c>replicator witness</c>.</summary>
internal static class ClusterCommands
{
    public static Command Build()
    {
        var cluster = new Command("cluster", "Run an embedded two-node cluster (and its witness) on this machine");
        cluster.Subcommands.Add(Up());
        cluster.Subcommands.Add(Init());
        return cluster;
    }

    public static Command Witness()
    {
        var dir = CommonOptions.Dir(required: true, "Where the witness keeps its votes");
        var listen = new Option<string>("--listen") { Description = "HTTPS address:port to listen on", DefaultValueFactory = _ => "127.0.0.1:7400" };
        var tls = new Option<string>("--tls") { Description = "The witness's certificate directory (ca-cert.pem, server-cert.pem, server-key.pem; relative to --dir)", DefaultValueFactory = _ => "tls" };
        var revocations = new Option<string?>("--revocation-list") { Description = "The cluster's revocation list (default: revoked.json in the certificate directory)" };
        var lease = new Option<double>("--lease") { Description = "Seconds a vote lasts without renewal", DefaultValueFactory = _ => 5 };
        var parentPid = new Option<int?>("--parent-pid") { Description = "Stop when this process exits", Hidden = true };
        var command = new Command("witness", "Run the witness: the third vote that keeps two disconnected nodes from both writing (mutual TLS: each node moves only its own vote)")
        {
            dir, listen, tls, revocations, lease, parentPid,
        };
        command.SetAction((parse, ct) => CliRunner.RunAsync(() =>
        {
            if (parse.GetValue(lease) is < 2 or > 600)
            {
                throw new CliException(ExitCodes.Usage, "--lease must be between 2 and 600 seconds");
            }

            return WitnessRole.RunAsync(new WitnessSettings(parse.GetValue(dir)!.FullName, parse.GetValue(listen)!, parse.GetValue(tls)!, parse.GetValue(revocations),
                TimeSpan.FromSeconds(parse.GetValue(lease)), parse.GetValue(parentPid)), ct);
        }));
        return command;
    }

    private static Command Up()
    {
        var dir = CommonOptions.Dir(required: true, "The cluster directory (created on first use; run again to bring the same volumes back)");
        var volumeSize = new Option<string>("--volume-size") { Description = "Size of vol0 when it is created", DefaultValueFactory = _ => "1G" };
        var poolSize = PoolSize();
        var noWitness = NoWitness();
        var command = new Command("up", "Start two replicating nodes, a witness and the gateway on loopback, create vol0, write DIR/cluster.json, run until Ctrl-C")
        {
            dir, volumeSize, poolSize, noWitness,
        };
        command.SetAction((parse, ct) => CliRunner.RunAsync(() =>
            ClusterRole.UpAsync(new ClusterUpSettings(
                parse.GetValue(dir)!.FullName,
                ParseSize(parse.GetValue(volumeSize)!),
                ParseSize(parse.GetValue(poolSize)!),
                !parse.GetValue(noWitness)), ct)));
        return command;
    }

    private static Command Init()
    {
        var dir = CommonOptions.Dir(required: true, "The cluster directory to prepare");
        var poolSize = PoolSize();
        var noWitness = NoWitness();
        var command = new Command("init", "Write the configuration of a cluster (ports, ids, token) without starting it; edit it, then run cluster up")
        {
            dir, poolSize, noWitness,
        };
        command.SetAction((parse, ct) => CliRunner.RunAsync(() =>
        {
            var directory = parse.GetValue(dir)!.FullName;
            PhysicalFileSystem.Instance.CreateDirectory(directory);
            var nodes = ClusterLayout.Ensure(directory, ParseSize(parse.GetValue(poolSize)!), !parse.GetValue(noWitness));
            Configuration.AdminToken.LoadOrCreate(Path.Combine(directory, ClusterLayout.TokenFileName));
            foreach (var (nodeDir, config) in nodes)
            {
                Console.WriteLine($"node {config.Name}: {Path.Combine(nodeDir, Configuration.NodeConfig.FileName)}");
            }

            Gateway.GatewayConfig.EnsureForCluster(directory);
            Console.WriteLine($"gateway: {Path.Combine(directory, Gateway.GatewayConfig.FileName)}");

            return Task.CompletedTask;
        }));
        return command;
    }

    private static Option<string> PoolSize() =>
        new("--pool-size") { Description = "Each node's storage pool at first start (sparse)", DefaultValueFactory = _ => "64G" };

    private static Option<bool> NoWitness() =>
        new("--no-witness") { Description = "At first start: no witness (a node that loses its peer keeps writing; a split brain is then possible and detected)" };

    private static long ParseSize(string text) =>
        ByteSize.TryParse(text, out var bytes) ? bytes : throw new CliException(ExitCodes.Usage, $"'{text}' is not a size; write it like 1G or 512M");
}

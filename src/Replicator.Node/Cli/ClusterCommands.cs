using System.CommandLine;
using Replicator.Core;
using Replicator.Node.Roles;

namespace Replicator.Node.Cli;

/// <summary><c>replicator cluster up</c>.</summary>
internal static class ClusterCommands
{
    public static Command Build()
    {
        var cluster = new Command("cluster", "Run an embedded two-node cluster on this machine");
        cluster.Subcommands.Add(Up());
        return cluster;
    }

    private static Command Up()
    {
        var dir = CommonOptions.Dir(required: true, "The cluster directory (created on first use; run again to bring the same volumes back)");
        var volumeSize = new Option<string>("--volume-size") { Description = "Size of vol0 when it is created", DefaultValueFactory = _ => "1G" };
        var poolSize = new Option<string>("--pool-size") { Description = "Each node's storage pool at first start (sparse)", DefaultValueFactory = _ => "64G" };
        var command = new Command("up", "Start two replicating nodes on loopback, create vol0, write DIR/cluster.json, run until Ctrl-C")
        {
            dir, volumeSize, poolSize,
        };
        command.SetAction((parse, ct) => CliRunner.RunAsync(() =>
            ClusterRole.UpAsync(new ClusterUpSettings(
                parse.GetValue(dir)!.FullName,
                ParseSize(parse.GetValue(volumeSize)!),
                ParseSize(parse.GetValue(poolSize)!)), ct)));
        return command;
    }

    private static long ParseSize(string text) =>
        ByteSize.TryParse(text, out var bytes) ? bytes : throw new CliException(ExitCodes.Usage, $"'{text}' is not a size; write it like 1G or 512M");
}

using System.CommandLine;
using Replicator.Core;
using Replicator.Node.Roles;

namespace Replicator.Node.Cli;

/// <summary><c>replicator node run</c>.</summary>
internal static class NodeCommands
{
    public static Command Build()
    {
        var node = new Command("node", "Run a storage node");
        node.Subcommands.Add(Run());
        return node;
    }

    private static Command Run()
    {
        var dir = CommonOptions.Dir(required: true, "The node's data directory (created with a new pool on first start)");
        var name = new Option<string?>("--name") { Description = "Node name (first start; default 'node')" };
        var nbd = new Option<string?>("--nbd-listen") { Description = "NBD TCP address:port (default 127.0.0.1:10809; port 0 picks a free one and keeps it)" };
        var admin = new Option<string?>("--admin-listen") { Description = "Admin HTTP address:port (default 127.0.0.1 with a free port, kept)" };
        var poolSize = new Option<string?>("--pool-size") { Description = "Capacity of the storage pool at first start (sparse file; default 64G)" };
        var parentPid = new Option<int?>("--parent-pid") { Description = "Stop when this process exits (cluster up passes its own pid)", Hidden = true };
        var command = new Command("run", "Run a storage node on DIR until Ctrl-C or SIGTERM") { dir, name, nbd, admin, poolSize, parentPid };
        command.SetAction((parse, ct) => CliRunner.RunAsync(() =>
        {
            long? pool = null;
            if (parse.GetValue(poolSize) is { } text)
            {
                pool = ByteSize.TryParse(text, out var bytes) ? bytes : throw new CliException(ExitCodes.Usage, $"'{text}' is not a size");
            }

            return NodeRole.RunAsync(new NodeRunSettings(parse.GetValue(dir)!.FullName)
            {
                Name = parse.GetValue(name),
                NbdListen = parse.GetValue(nbd),
                AdminListen = parse.GetValue(admin),
                PoolSize = pool,
                ParentPid = parse.GetValue(parentPid),
            }, ct);
        }));
        return command;
    }
}

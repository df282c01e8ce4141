using System.CommandLine;

namespace Replicator.Node.Cli;

/// <summary>The <c>replicator</c> command tree.</summary>
internal static class CommandLine
{
    public static async Task<int> InvokeAsync(string[] args)
    {
        var root = new RootCommand("Replicator: synchronous, active-active block storage mirror served over NBD");
        root.Subcommands.Add(NodeCommands.Build());
        root.Subcommands.Add(VolumeCommands.Build());
        root.Subcommands.Add(ClusterCommands.Build());
        root.Subcommands.Add(ClusterCommands.Witness());
        root.Subcommands.Add(GatewayCommands.Build());
        root.Subcommands.Add(ReplicationCommands.Verify());
        root.Subcommands.Add(ReplicationCommands.Resync());
        root.Subcommands.Add(ScrubCommands.Build());
        root.Subcommands.Add(StatusCommand.Build());
        root.Subcommands.Add(CertCommands.Build());

        var parse = root.Parse(args);
        if (parse.Errors.Count > 0 && parse.Action is not System.CommandLine.Help.HelpAction)
        {
            foreach (var error in parse.Errors)
            {
                await Console.Error.WriteLineAsync($"replicator: {error.Message}");
            }

            await Console.Error.WriteLineAsync("Run 'replicator --help' (or '<command> --help') for usage.");
            return ExitCodes.Usage;
        }

        if (parse.CommandResult.Command.Name == "gateway")
        {
            GatewayCommands.PrepareProcess();
        }

        // SIGINT/SIGTERM cancel the command's token; long-running roles get time to stop cleanly.
        return await parse.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = TimeSpan.FromMinutes(2) });
    }
}

using System.CommandLine;
using Replicator.Core;
using Replicator.Node.Admin;

namespace Replicator.Node.Cli;

/// <summary><c>replicator scrub start|pause|resume|status VOLUME</c>: each node scrubs its own replica; the command reaches every node of a cluster directory (or the one named).</summary>
internal static class ScrubCommands
{
    public static Command Build()
    {
        var scrub = new Command("scrub", "Read and check every allocated block of a volume in the background, healing damage from the other replica");
        scrub.Subcommands.Add(Action("status", "Show where a volume's scrub stands on each node", null));
        scrub.Subcommands.Add(Action("start", "Start a scrub pass now on each node (unless one runs), lifting a pause", "start"));
        scrub.Subcommands.Add(Action("pause", "Pause the scrub of a volume (scheduled passes wait too) until resumed", "pause"));
        scrub.Subcommands.Add(Action("resume", "Resume a paused scrub", "resume"));
        return scrub;
    }

    private static Command Action(string verb, string description, string? post)
    {
        var volume = new Argument<string>("volume") { Description = "Volume" };
        var json = CommonOptions.Json();
        var command = new Command(verb, description) { volume, json };
        var target = AdminTarget.AddTo(command);
        command.SetAction((parse, ct) => CliRunner.RunAsync(async () =>
        {
            var name = Uri.EscapeDataString(parse.GetValue(volume)!);
            var nodes = string.IsNullOrEmpty(parse.GetValue(target.Node))
                ? await target.ConnectAllAsync(parse, ct)
                : [(parse.GetValue(target.Node)!, await target.TryConnectAsync(parse, ct) ?? throw new CliException(ExitCodes.Unreachable, "the node is not running"))];
            try
            {
                var results = new List<(string Node, ScrubInfo Scrub, IntegrityInfo? Integrity)>();
                foreach (var (node, client) in nodes)
                {
                    var scrub = post is null
                        ? await client.GetAsync<ScrubInfo>($"/volumes/{name}/scrub", ct)
                        : await client.PostAsync<ScrubInfo>($"/volumes/{name}/scrub/{post}", null, ct);
                    var info = await client.GetAsync<VolumeInfo>($"/volumes/{name}", ct);
                    results.Add((node.Length > 0 ? node : (await client.GetAsync<NodeInfo>("/node", ct)).Name, scrub, info.Integrity));
                }

                if (parse.GetValue(json))
                {
                    CommonOptions.PrintJson(results.Select(r => new { node = r.Node, scrub = r.Scrub, integrity = r.Integrity }).ToList());
                    return;
                }

                foreach (var (node, scrub, integrity) in results)
                {
                    Console.WriteLine($"{parse.GetValue(volume)} on {node}: {Describe(scrub)}");
                    if (integrity is not null)
                    {
                        Console.WriteLine($"  damaged blocks since the node started: {integrity.Detected} found, {integrity.Healed} healed, {integrity.Unrecoverable} unrecoverable");
                    }
                }
            }
            finally
            {
                nodes.ForEach(n => n.Client.Dispose());
            }
        }));
        return command;
    }

    /// <summary>One line: the pass running (with progress, rate, ETA and findings) or the last one and when the next is due.</summary>
    internal static string Describe(ScrubInfo s)
    {
        var findings = s.State is "idle"
            ? $"last pass {(s.LastPass.ScannedBytes == 0 ? "none yet" : $"{s.LastPass.Detected} damaged, {s.LastPass.Healed} healed, {s.LastPass.Unrecoverable} unrecoverable over {ByteSize.Format(s.LastPass.ScannedBytes)}")}" +
                $", ended {s.LastCompleted:yyyy-MM-dd HH:mm}; next {(s.NextDue is { } due ? due.ToString("yyyy-MM-dd HH:mm", System.Globalization.CultureInfo.InvariantCulture) : "when asked")}"
            : $"{ByteSize.Format(s.DoneBytes)} of {ByteSize.Format(s.TotalBytes)} at {ByteSize.Format((long)s.BytesPerSecond)}/s, ETA {(s.EtaSeconds is { } eta ? TimeSpan.FromSeconds(eta).ToString(@"hh\:mm\:ss", System.Globalization.CultureInfo.InvariantCulture) : "-")}; " +
                $"this pass: {s.Pass.Detected} damaged, {s.Pass.Healed} healed, {s.Pass.Unrecoverable} unrecoverable";
        return $"scrub {s.State}, {findings} (cap {(s.RateLimit == 0 ? "none" : ByteSize.Format(s.RateLimit) + "/s")})";
    }
}

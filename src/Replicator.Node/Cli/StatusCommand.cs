using System.CommandLine;
using Replicator.Core;
using Replicator.Node.Admin;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Replicator.Node.Cli;

/// <summary><c>replicator status</c>: both nodes (or one) and every volume's replication state, as a table or JSON, once or live.</summary>
internal static class StatusCommand
{
    public static Command Build()
    {
        var json = CommonOptions.Json();
        var watch = new Option<bool>("--watch", "-w") { Description = "Keep the table live (refreshes every second) until Ctrl-C" };
        var command = new Command("status", "Show the nodes, the peer link and each volume's replication state") { json, watch };
        var target = AdminTarget.AddTo(command);
        command.SetAction((parse, ct) => CliRunner.RunAsync(async () =>
        {
            if (Console.IsOutputRedirected)
            {
                // Piped or captured: plain text, wide enough that no column wraps.
                AnsiConsole.Profile.Width = 200;
                AnsiConsole.Profile.Capabilities.Ansi = false;
            }

            var nodes = await target.ConnectAllAsync(parse, ct);
            try
            {
                if (parse.GetValue(json))
                {
                    CommonOptions.PrintJson(await SnapshotAsync(nodes, ct));
                    return ExitCodes.Ok;
                }

                if (!parse.GetValue(watch))
                {
                    AnsiConsole.Write(Render(await SnapshotAsync(nodes, ct)));
                    return ExitCodes.Ok;
                }

                await AnsiConsole.Live(new Text("connecting...")).StartAsync(async live =>
                {
                    while (!ct.IsCancellationRequested)
                    {
                        live.UpdateTarget(Render(await SnapshotAsync(nodes, ct)));
                        await Task.Delay(1000, ct);
                    }
                });
                return ExitCodes.Ok;
            }
            finally
            {
                nodes.ForEach(n => n.Client.Dispose());
            }
        }));
        return command;
    }

    internal static async Task<List<NodeStatus>> SnapshotAsync(List<(string Name, AdminClient Client)> nodes, CancellationToken ct)
    {
        var result = new List<NodeStatus>();
        foreach (var (name, client) in nodes)
        {
            try
            {
                var node = await client.GetAsync<NodeInfo>("/node", ct);
                var pool = await client.GetAsync<PoolInfo>("/pool", ct);
                var volumes = await client.GetAsync<List<VolumeInfo>>("/volumes", ct);
                result.Add(new NodeStatus(node.Name, client.BaseAddress.ToString(), true, null, node, pool, volumes));
            }
            catch (CliException e) when (e.ExitCode == ExitCodes.Unreachable && nodes.Count > 1)
            {
                result.Add(new NodeStatus(name, client.BaseAddress.ToString(), false, e.Message, null, null, []));
            }
        }

        return result;
    }

    private static IRenderable Render(List<NodeStatus> nodes)
    {
        var rows = new List<IRenderable>();
        foreach (var node in nodes)
        {
            if (!node.Reachable)
            {
                rows.Add(new Markup($"[bold]node {Markup.Escape(node.Name)}[/]  [red]unreachable[/] ({Markup.Escape(node.Error ?? "")})"));
                continue;
            }

            var info = node.Node!;
            var peer = info.Peer is null ? "no peer (single node)"
                : info.Peer.Connected ? $"peer {info.Peer.Name} [green]connected[/] since {info.Peer.ConnectedSince:HH:mm:ss} " +
                    (info.Peer.Encrypted == true ? "(authenticated, encrypted)" : "[yellow](authenticated, not encrypted)[/]") + $", {info.Peer.Connects} connect(s), " +
                    (info.Peer.ReadLeaseHeld ? $"read lease held ({info.Peer.ReadLeaseMs:0} ms)" : $"[yellow]read lease lapsed[/] ({info.Peer.ReadLeaseMs:0} ms): paired reads wait for the peer")
                : $"peer {info.Peer.Name} [red]disconnected[/], {info.Peer.Connects} connect(s)";
            rows.Add(new Markup($"[bold]node {Markup.Escape(info.Name)}[/] pid {info.Pid}, {Markup.Escape(info.NbdTcp)}; {peer}"));
            if (info.Peer is { RefusedConnections: > 0 } or { RefusedRequests: > 0 })
            {
                rows.Add(new Markup($"  [yellow]refused on the peer link[/]: {info.Peer.RefusedConnections} connection(s), {info.Peer.RefusedRequests} request(s); last: "
                    + Markup.Escape(new[] { info.Peer.LastRefusedRequest, info.Peer.LastRefusedConnection }.Max(StringComparer.Ordinal) ?? "")));
            }
            rows.Add(new Markup($"  pool {ByteSize.Format(node.Pool!.AllocatedBytes)} allocated of {ByteSize.Format(node.Pool.CapacityBytes)}, {ByteSize.Format(node.Pool.FreeBytes)} free, {ByteSize.Format(node.Pool.VirtualBytes)} provisioned" +
                (node.Pool.BlockChecksums ? ", block checksums on" : "")));
            if (!node.Pool.BlockChecksums)
            {
                rows.Add(new Markup("  [bold red]BLOCK CHECKSUMS ARE OFF[/] [red](blockChecksums: false in node.json, a measurement option): bad blocks are neither detected nor repaired on this node[/]"));
            }

            if (info.Quorum is not null)
            {
                rows.Add(new Markup($"  quorum: {Markup.Escape(info.Quorum)}"));
            }

            var table = new Table().Border(TableBorder.Rounded)
                .AddColumns("volume", "size", "allocated", "connection", "disk", "role", "writes ordered by", "out of sync", "resync");
            foreach (var v in node.Volumes)
            {
                var r = v.Replication;
                table.AddRow(
                    new Text(v.Name),
                    new Text(ByteSize.Format(v.SizeBytes)),
                    new Text(ByteSize.Format(v.AllocatedBytes)),
                    new Markup(r is null ? "standalone" : Colour(r.Connection)),
                    new Markup(r is null ? "-" : Colour(r.DiskState)),
                    new Text(r?.Role ?? "-"),
                    new Text(r?.WritesOrderedBy ?? "-"),
                    new Text(r is null ? "-" : ByteSize.Format(r.OutOfSyncBytes)),
                    r is { Resync.State: not "idle" } ? Progress(r.Resync) : new Markup(r?.Problem is null && r?.Alert is null ? r?.Resync.State ?? "-" : "[red]see below[/]"));
            }

            rows.Add(table);
            foreach (var v in node.Volumes.Where(v => v.Replication?.Problem is not null))
            {
                rows.Add(new Markup($"  [red]{Markup.Escape(v.Name)}[/]: {Markup.Escape(v.Replication!.Problem!)}"));
            }

            foreach (var v in node.Volumes.Where(v => v.Scrub is not null))
            {
                var i = v.Integrity!;
                var damage = i.Detected + i.Unrecoverable == 0 ? "[green]no damaged block found[/]"
                    : $"[{(i.Unrecoverable > 0 ? "red" : "yellow")}]{i.Detected} damaged block(s) found, {i.Healed} healed, {i.Unrecoverable} unrecoverable[/]" +
                        (i.Last is { } last ? Markup.Escape($" (last: {last.Outcome} at {last.Offset} on {last.Replica}, {last.Path}, {last.At:HH:mm:ss})") : "");
                rows.Add(new Markup($"  {Markup.Escape(v.Name)}: {damage}; {Markup.Escape(ScrubCommands.Describe(v.Scrub!))}"));
            }

            foreach (var v in node.Volumes.Where(v => v.Replication?.Alert is not null))
            {
                rows.Add(new Markup($"  [red]{Markup.Escape(v.Name)} degraded[/]: {Markup.Escape(v.Replication!.Alert!)}"));
            }
        }

        return new Rows(rows);
    }

    private static IRenderable Progress(ResyncInfo resync)
    {
        var fraction = resync.TotalBytes == 0 ? 1 : (double)resync.DoneBytes / resync.TotalBytes;
        var width = 20;
        var filled = (int)Math.Round(fraction * width);
        var bar = new string('█', filled) + new string('░', width - filled);
        var eta = resync.EtaSeconds is { } seconds ? $" ETA {TimeSpan.FromSeconds(seconds):hh\\:mm\\:ss}" : "";
        return new Markup($"{resync.State} [blue]{bar}[/] {fraction:P0} {ByteSize.Format((long)resync.BytesPerSecond)}/s{eta}");
    }

    private static string Colour(string state) => state switch
    {
        "connected" or "up-to-date" => $"[green]{state}[/]",
        "disconnected" or "outdated" => $"[yellow]{state}[/]",
        _ => $"[red]{Markup.Escape(state)}[/]",
    };
}

using System.CommandLine;
using Replicator.Core;
using Replicator.Node.Admin;

namespace Replicator.Node.Cli;

/// <summary><c>replicator verify</c>, <c>replicator status</c> and <c>replicator resync …</c>: they talk to the nodes' admin APIs.</summary>
internal static class ReplicationCommands
{
    private static readonly TimeSpan VerifyTimeout = TimeSpan.FromHours(24);

    public static Command Verify()
    {
        var volume = new Argument<string>("volume") { Description = "Volume to verify" };
        var regionSize = new Option<string>("--region-size") { Description = "Size of the regions compared", DefaultValueFactory = _ => "64K" };
        var json = CommonOptions.Json();
        var command = new Command("verify", "Compare both replicas of a volume region by region (online); exit code 1 when they differ") { volume, regionSize, json };
        var target = AdminTarget.AddTo(command);
        command.SetAction((parse, ct) => CliRunner.RunAsync(async () =>
        {
            var name = Uri.EscapeDataString(parse.GetValue(volume)!);
            if (!ByteSize.TryParse(parse.GetValue(regionSize), out var region))
            {
                throw new CliException(ExitCodes.Usage, $"'{parse.GetValue(regionSize)}' is not a size");
            }

            using var client = await target.TryConnectAsync(parse, ct) ?? throw new CliException(ExitCodes.Unreachable, "the node is not running; verify needs both nodes up");
            var report = await client.PostAsync<VerifyInfo>($"/volumes/{name}/verify?regionSize={region}", null, ct);
            var deadline = DateTime.UtcNow + VerifyTimeout;
            while (report.State == "running" && DateTime.UtcNow < deadline)
            {
                await Task.Delay(200, ct);
                report = await client.GetAsync<VerifyInfo>($"/volumes/{name}/verify", ct);
            }

            if (parse.GetValue(json))
            {
                CommonOptions.PrintJson(report);
            }
            else if (report.State == "completed")
            {
                Console.WriteLine($"{parse.GetValue(volume)}: {report.DifferingRegions} differing region(s) of {ByteSize.Format(report.RegionSize)} " +
                    $"({ByteSize.Format(report.TotalBytes)} compared in {report.ElapsedSeconds:0.0} s)" +
                    (report.UnrecoverableRegions > 0 ? $", {report.UnrecoverableRegions} unrecoverable" : ""));
                foreach (var range in report.Differing)
                {
                    var why = range.DamagedOn.Length switch
                    {
                        0 => "both copies intact but different",
                        1 => $"bad copy on {range.DamagedOn[0]} (fails its checksum; 'resync checksum' repairs it from the other)",
                        _ => $"unrecoverable: the copies on {string.Join(" and ", range.DamagedOn)} both fail their checksums (reads fail with EIO)",
                    };
                    Console.WriteLine($"  differs: [{range.Offset}, {range.Offset + range.Length})  ({ByteSize.Format(range.Length)} at {ByteSize.Format(range.Offset)}): {why}");
                }
            }

            return report.State switch
            {
                "completed" when report.DifferingRegions == 0 => ExitCodes.Ok,
                "completed" => ExitCodes.CheckFailed,
                _ => throw new CliException(ExitCodes.Failed, $"verify of {parse.GetValue(volume)} did not complete: {report.Error}"),
            };
        }));
        return command;
    }

    public static Command Resync()
    {
        var resync = new Command("resync", "Watch and steer resyncs");
        resync.Subcommands.Add(ResyncAction("status", "Show a volume's replication and resync state", null));
        resync.Subcommands.Add(ResyncAction("pause", "Pause a volume's resync (it stays out of sync until resumed)", "pause"));
        resync.Subcommands.Add(ResyncAction("resume", "Resume a paused resync", "resume"));
        resync.Subcommands.Add(Resolve());
        resync.Subcommands.Add(Rate());
        resync.Subcommands.Add(Checksum());
        return resync;
    }

    private static Command ResyncAction(string verb, string description, string? post)
    {
        var volume = new Argument<string>("volume") { Description = "Volume" };
        var json = CommonOptions.Json();
        var command = new Command(verb, description) { volume, json };
        var target = AdminTarget.AddTo(command);
        command.SetAction((parse, ct) => CliRunner.RunAsync(async () =>
        {
            var name = Uri.EscapeDataString(parse.GetValue(volume)!);
            using var client = await target.TryConnectAsync(parse, ct) ?? throw new CliException(ExitCodes.Unreachable, "the node is not running");
            var info = post is null
                ? await client.GetAsync<ReplicaInfo>($"/volumes/{name}/resync", ct)
                : await client.PostAsync<ReplicaInfo>($"/volumes/{name}/resync/{post}", null, ct);
            if (parse.GetValue(json))
            {
                CommonOptions.PrintJson(info);
                return;
            }

            var r = info.Resync;
            Console.WriteLine($"{parse.GetValue(volume)}: {info.Connection}, disk {info.DiskState}, role {info.Role}, writes ordered by {info.WritesOrderedBy ?? "-"}");
            Console.WriteLine($"  out of sync {ByteSize.Format(info.OutOfSyncBytes)}; resync {r.State}: {ByteSize.Format(r.DoneBytes)} of {ByteSize.Format(r.TotalBytes)}" +
                $" at {ByteSize.Format((long)r.BytesPerSecond)}/s, ETA {(r.EtaSeconds is { } eta ? $"{eta:0} s" : "-")}, {ByteSize.Format(r.SentBytes)} sent");
            if (info.Problem is not null)
            {
                Console.WriteLine($"  problem: {info.Problem}");
            }
        }));
        return command;
    }

    private static Command Rate()
    {
        var volume = new Argument<string>("volume") { Description = "Volume" };
        var limit = new Option<string?>("--limit") { Description = "Fixed cap in bytes per second, e.g. 100M; 0 for none" };
        var adaptive = new Option<bool?>("--adaptive") { Description = "Whether the resync yields to client I/O (true/false)" };
        var command = new Command("rate", "Set how fast a volume resyncs from this node") { volume, limit, adaptive };
        var target = AdminTarget.AddTo(command);
        command.SetAction((parse, ct) => CliRunner.RunAsync(async () =>
        {
            using var client = await target.TryConnectAsync(parse, ct) ?? throw new CliException(ExitCodes.Unreachable, "the node is not running");
            var info = await client.PutAsync<ReplicaInfo>($"/volumes/{Uri.EscapeDataString(parse.GetValue(volume)!)}/resync/settings",
                new ResyncSettingsRequest(parse.GetValue(limit), parse.GetValue(adaptive)), ct);
            Console.WriteLine($"{parse.GetValue(volume)}: resync cap {(info.Resync.RateLimit == 0 ? "none" : ByteSize.Format(info.Resync.RateLimit) + "/s")}, adaptive {(info.Resync.Adaptive ? "on" : "off")}");
        }));
        return command;
    }

    private static Command Checksum()
    {
        var volume = new Argument<string>("volume") { Description = "Volume" };
        var command = new Command("checksum",
            "Compare every region of a volume with the peer and repair those that differ, from the copy that passes its checksums (a copy that fails them is never sent)") { volume };
        var target = AdminTarget.AddTo(command);
        command.SetAction((parse, ct) => CliRunner.RunAsync(async () =>
        {
            var name = Uri.EscapeDataString(parse.GetValue(volume)!);
            var nodes = await target.ConnectAllAsync(parse, ct);
            try
            {
                // It runs on the node that orders the volume's writes: ask any node which one that is.
                var first = await nodes[0].Client.GetAsync<VolumeInfo>($"/volumes/{name}", ct);
                var owner = first.Replication?.WritesOrderedBy;
                var client = nodes.FirstOrDefault(n => n.Name == owner).Client ?? nodes[0].Client;
                var info = await client.PostAsync<ReplicaInfo>($"/volumes/{name}/resync/checksum", null, ct);
                Console.WriteLine($"{parse.GetValue(volume)}: checksum resync started on {owner ?? "the node"}, {ByteSize.Format(info.OutOfSyncBytes)} to compare");
            }
            finally
            {
                nodes.ForEach(n => n.Client.Dispose());
            }
        }));
        return command;
    }

    private static Command Resolve()
    {
        var volume = new Argument<string>("volume") { Description = "Volume in split brain" };
        var discard = new Option<string>("--discard") { Description = "The node whose changes since the split are thrown away", Required = true };
        var command = new Command("resolve", "Resolve a split brain by naming the node whose changes are discarded") { volume, discard };
        var target = AdminTarget.AddTo(command);
        command.SetAction((parse, ct) => CliRunner.RunAsync(async () =>
        {
            using var client = await target.TryConnectAsync(parse, ct) ?? throw new CliException(ExitCodes.Unreachable, "the node is not running");
            await client.PostAsync<ReplicaInfo>($"/volumes/{Uri.EscapeDataString(parse.GetValue(volume)!)}/resync/resolve", new ResolveRequest(parse.GetValue(discard)), ct);
            Console.WriteLine($"{parse.GetValue(volume)}: the changes on {parse.GetValue(discard)} are discarded; it resyncs from the other node");
        }));
        return command;
    }
}

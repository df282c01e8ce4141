using System.CommandLine;
using Microsoft.Extensions.Logging.Abstractions;
using Replicator.Core;
using Replicator.Core.Pool;
using Replicator.Core.Storage;
using Replicator.Node.Admin;
using Replicator.Node.Configuration;
using Replicator.Core.Volumes;
using Replicator.Node.Replication;
using Replicator.Node.Roles;

namespace Replicator.Node.Cli;

/// <summary>
/// <c>replicator volume create|list|show|resize|delete|prefer|attach-disk</c>. They talk to the node's admin API when the
/// node runs, and work on its directory directly when it does not (the pool lock keeps the two apart).
/// </summary>
internal static class VolumeCommands
{
    public static Command Build()
    {
        var volume = new Command("volume", "Create, list, resize and delete volumes");
        volume.Subcommands.Add(Create());
        volume.Subcommands.Add(List());
        volume.Subcommands.Add(Show());
        volume.Subcommands.Add(Resize());
        volume.Subcommands.Add(Delete());
        volume.Subcommands.Add(Prefer());
        volume.Subcommands.Add(AttachDisk());
        return volume;
    }

    private static Command Create()
    {
        var name = new Argument<string>("name") { Description = "Volume name: letters, digits, '.', '_', '-'" };
        var size = new Option<string>("--size", "-s") { Description = "Virtual size, e.g. 1G, 500M (thin: takes space only when written)", Required = true };
        var preferred = new Option<string?>("--preferred") { Description = "The node that serves (and orders writes of) the volume while both are up; default: spread across the nodes" };
        var json = CommonOptions.Json();
        var command = new Command("create", "Create a thin-provisioned volume") { name, size, preferred, json };
        var target = AdminTarget.AddTo(command);
        command.SetAction((parse, ct) => CliRunner.RunAsync(async () =>
        {
            var bytes = ParseSize(parse.GetValue(size)!);
            var info = await WithNodeAsync(parse, target, ct,
                client => client.PostAsync<VolumeInfo>("/volumes",
                    new CreateVolumeRequest(parse.GetValue(name), bytes.ToString(System.Globalization.CultureInfo.InvariantCulture)) { PreferredNode = parse.GetValue(preferred) }, ct),
                storage => AdminApi.ToInfo(Guard(() =>
                {
                    storage.Config.RequireVolumeSize(bytes);
                    return storage.Pool.CreateVolume(parse.GetValue(name)!, bytes);
                })));
            Print(info, parse.GetValue(json), $"created volume {info.Name} ({ByteSize.Format(info.SizeBytes)}, id {info.Id})");
        }));
        return command;
    }

    private static Command List()
    {
        var json = CommonOptions.Json();
        var command = new Command("list", "List the node's volumes") { json };
        var target = AdminTarget.AddTo(command);
        command.SetAction((parse, ct) => CliRunner.RunAsync(async () =>
        {
            var volumes = await WithNodeAsync(parse, target, ct,
                client => client.GetAsync<List<VolumeInfo>>("/volumes", ct),
                storage => storage.Pool.Volumes.OrderBy(v => v.Name, StringComparer.Ordinal).Select(AdminApi.ToInfo).ToList());
            if (parse.GetValue(json))
            {
                CommonOptions.PrintJson(volumes);
                return;
            }

            Console.WriteLine($"{"NAME",-24} {"SIZE",12} {"ALLOCATED",12}  ID");
            foreach (var v in volumes)
            {
                Console.WriteLine($"{v.Name,-24} {ByteSize.Format(v.SizeBytes),12} {ByteSize.Format(v.AllocatedBytes),12}  {v.Id}");
            }
        }));
        return command;
    }

    private static Command Show()
    {
        var name = new Argument<string>("name") { Description = "Volume name" };
        var json = CommonOptions.Json();
        var command = new Command("show", "Show one volume") { name, json };
        var target = AdminTarget.AddTo(command);
        command.SetAction((parse, ct) => CliRunner.RunAsync(async () =>
        {
            var volumeName = parse.GetValue(name)!;
            var info = await WithNodeAsync(parse, target, ct,
                client => client.GetAsync<VolumeInfo>($"/volumes/{Uri.EscapeDataString(volumeName)}", ct),
                storage => AdminApi.ToInfo(storage.Pool.Find(volumeName) ?? throw NoSuchVolume(volumeName)));
            Print(info, parse.GetValue(json),
                $"{info.Name}: {ByteSize.Format(info.SizeBytes)}, {ByteSize.Format(info.AllocatedBytes)} allocated, id {info.Id}, {info.AttachedClients} attached");
        }));
        return command;
    }

    private static Command Resize()
    {
        var name = new Argument<string>("name") { Description = "Volume name" };
        var size = new Option<string>("--size", "-s") { Description = "New, larger size", Required = true };
        var json = CommonOptions.Json();
        var command = new Command("resize", "Grow a volume (online; clients see the new size when they reconnect)") { name, size, json };
        var target = AdminTarget.AddTo(command);
        command.SetAction((parse, ct) => CliRunner.RunAsync(async () =>
        {
            var volumeName = parse.GetValue(name)!;
            var bytes = ParseSize(parse.GetValue(size)!);
            var info = await WithNodeAsync(parse, target, ct,
                client => client.PostAsync<VolumeInfo>($"/volumes/{Uri.EscapeDataString(volumeName)}/resize",
                    new ResizeVolumeRequest(bytes.ToString(System.Globalization.CultureInfo.InvariantCulture)), ct),
                storage =>
                {
                    var volume = storage.Pool.Find(volumeName) ?? throw NoSuchVolume(volumeName);
                    Guard(() =>
                    {
                        storage.Config.RequireVolumeSize(bytes);
                        storage.Pool.ResizeVolume(volume, bytes);
                    });
                    return AdminApi.ToInfo(volume);
                });
            Print(info, parse.GetValue(json), $"volume {info.Name} is now {ByteSize.Format(info.SizeBytes)}");
        }));
        return command;
    }

    private static Command Prefer()
    {
        var name = new Argument<string>("name") { Description = "Volume name" };
        var node = new Option<string>("--node") { Description = "The node the volume should prefer", Required = true };
        var json = CommonOptions.Json();
        var command = new Command("prefer", "Change the node a volume prefers (online: the gateway moves its I/O there and that node orders its writes)") { name, node, json };
        var target = AdminTarget.AddTo(command);
        command.SetAction((parse, ct) => CliRunner.RunAsync(async () =>
        {
            using var client = await target.TryConnectAsync(parse, ct) ?? throw new CliException(ExitCodes.Unreachable, "the node is not running");
            var info = await client.PutAsync<VolumeInfo>($"/volumes/{Uri.EscapeDataString(parse.GetValue(name)!)}/preferred", new PreferredNodeRequest(parse.GetValue(node)), ct);
            Print(info, parse.GetValue(json), $"volume {info.Name} now prefers {info.PreferredNode}; writes are ordered by {info.Replication?.WritesOrderedBy ?? "-"}");
        }));
        return command;
    }

    private static Command AttachDisk()
    {
        var name = new Argument<string>("name") { Description = "Volume name" };
        var json = CommonOptions.Json();
        var command = new Command("attach-disk",
            "Attach a volume's replica to its disk again on a node where it was detached (after an I/O error, once repaired; or a full pool, once space is freed); the peer resyncs it") { name, json };
        var target = AdminTarget.AddTo(command);
        command.SetAction((parse, ct) => CliRunner.RunAsync(async () =>
        {
            using var client = await target.TryConnectAsync(parse, ct) ?? throw new CliException(ExitCodes.Unreachable, "the node is not running");
            var info = await client.PostAsync<ReplicaInfo>($"/volumes/{Uri.EscapeDataString(parse.GetValue(name)!)}/attach-disk", null, ct);
            if (parse.GetValue(json))
            {
                CommonOptions.PrintJson(info);
                return;
            }

            Console.WriteLine($"{parse.GetValue(name)}: disk attached, {info.DiskState}; it resyncs from its peer");
        }));
        return command;
    }

    private static Command Delete()
    {
        var name = new Argument<string>("name") { Description = "Volume name" };
        var yes = new Option<bool>("--yes") { Description = "Confirm that the volume's data is to be destroyed" };
        var command = new Command("delete", "Delete a volume and its data (refused while a client is attached)") { name, yes };
        var target = AdminTarget.AddTo(command);
        command.SetAction((parse, ct) => CliRunner.RunAsync(async () =>
        {
            var volumeName = parse.GetValue(name)!;
            if (!parse.GetValue(yes))
            {
                throw new CliException(ExitCodes.Usage, $"deleting '{volumeName}' destroys its data; add --yes to confirm");
            }

            await WithNodeAsync<bool>(parse, target, ct,
                async client =>
                {
                    await client.DeleteAsync($"/volumes/{Uri.EscapeDataString(volumeName)}?confirm=true", ct);
                    return true;
                },
                storage =>
                {
                    storage.Delete(storage.Pool.Find(volumeName) ?? throw NoSuchVolume(volumeName));
                    return true;
                });
            Console.WriteLine($"deleted volume {volumeName}");
        }));
        return command;
    }

    private static async Task<T> WithNodeAsync<T>(ParseResult parse, AdminTarget target, CancellationToken ct,
        Func<AdminClient, Task<T>> online, Func<OfflineStorage, T> offline)
    {
        using var client = await target.TryConnectAsync(parse, ct);
        if (client is not null)
        {
            return await online(client);
        }

        var dir = parse.GetValue(target.Dir)!.FullName;
        using var storage = OfflineStorage.Open(dir);
        return offline(storage);
    }

    private static long ParseSize(string text) =>
        ByteSize.TryParse(text, out var bytes) ? bytes : throw new CliException(ExitCodes.Usage, $"'{text}' is not a size; write it like 1G, 512M or 4096");

    private static T Guard<T>(Func<T> action)
    {
        try
        {
            return action();
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            throw new CliException(ExitCodes.Failed, e.Message);
        }
    }

    private static void Guard(Action action) => Guard(() =>
    {
        action();
        return true;
    });

    private static CliException NoSuchVolume(string name) => new(ExitCodes.Failed, $"there is no volume named '{name}'");

    private static void Print(VolumeInfo info, bool json, string text)
    {
        if (json)
        {
            CommonOptions.PrintJson(info);
        }
        else
        {
            Console.WriteLine(text);
        }
    }

    /// <summary>The pool of a node that is not running, opened directly.</summary>
    private sealed class OfflineStorage : IDisposable
    {
        private readonly string _directory;
        private readonly NodeConfig _config;

        private OfflineStorage(string directory, NodeConfig config, StoragePool pool)
        {
            _directory = directory;
            _config = config;
            Pool = pool;
        }

        public StoragePool Pool { get; }

        public NodeConfig Config => _config;

        public static OfflineStorage Open(string dir)
        {
            var config = NodeConfig.TryLoad(dir) ?? throw new CliException(ExitCodes.Usage, $"{dir} is not a node directory");
            try
            {
                return new OfflineStorage(dir, config, NodeStorage.OpenPool(PhysicalFileSystem.Instance, dir, config, NullLogger.Instance));
            }
            catch (IOException e)
            {
                throw new CliException(ExitCodes.Failed, e.Message);
            }
        }

        /// <summary>Deletes a volume of a node without a peer; a replicated volume is deleted through the running node, on both replicas.</summary>
        public void Delete(ThinVolume volume)
        {
            if (_config.Peer is not null)
            {
                throw new CliException(ExitCodes.Failed, $"volume '{volume.Name}' is replicated to {_config.Peer.Name}; start the node and delete it there, so both replicas go");
            }

            Pool.DeleteVolume(volume);
            var replica = Path.Combine(_directory, ReplicationManager.ReplicasDirectoryName, volume.Id.ToString());
            if (Directory.Exists(replica))
            {
                Directory.Delete(replica, recursive: true);
            }
        }

        public void Dispose() => Pool.Dispose();
    }
}

using System.CommandLine;
using Replicator.Core;
using Replicator.Node.Roles;

namespace Replicator.Node.Cli;

/// <summary><c>replicator node run</c> and <c>replicator node rebuild</c>.</summary>
internal static class NodeCommands
{
    public static Command Build()
    {
        var node = new Command("node", "Run a storage node, or rebuild one whose storage is damaged");
        node.Subcommands.Add(Run());
        node.Subcommands.Add(Rebuild());
        return node;
    }

    private static Command Rebuild()
    {
        var dir = CommonOptions.Dir(required: true, "The stopped node's data directory");
        var yes = new Option<bool>("--yes") { Description = "Confirm: this node's copy of every volume is set aside and taken again from its peer" };
        var command = new Command("rebuild",
            "Set a stopped node's damaged pool and replica files aside (nothing is deleted) so that it starts empty and takes every volume back from its peer by a full resync")
            { dir, yes };
        command.SetAction((parse, ct) => CliRunner.RunAsync(() =>
        {
            var directory = parse.GetValue(dir)!.FullName;
            var config = Configuration.NodeConfig.TryLoad(directory)
                ?? throw new CliException(ExitCodes.Usage, $"{directory} is not a node directory (no {Configuration.NodeConfig.FileName})");
            if (!parse.GetValue(yes))
            {
                throw new CliException(ExitCodes.Usage,
                    $"rebuilding sets node {config.Name}'s pool and replica files aside; every volume then comes back from {config.Peer?.Name ?? "its peer"} " +
                    "by a full resync, and until it has, this node serves none of them. Repeat with --yes to go ahead.");
            }

            string aside;
            try
            {
                aside = Storage.NodeRebuild.Run(directory, config, DateTimeOffset.UtcNow);
            }
            catch (InvalidOperationException e)
            {
                throw new CliException(ExitCodes.Failed, e.Message);
            }

            Console.WriteLine($"node {config.Name}: the pool and replica files are set aside in {aside} (delete them once the volumes are back).");
            Console.WriteLine($"Start the node ('replicator node run --dir {directory}'): it takes every volume from {config.Peer!.Name} by a full resync; " +
                "'replicator status' shows the progress and 'replicator verify VOLUME' checks the result.");
            return Task.FromResult(ExitCodes.Ok);
        }));
        return command;
    }

    private static Command Run()
    {
        var dir = CommonOptions.Dir(required: true, "The node's data directory (created with a new pool on first start)");
        var name = new Option<string?>("--name") { Description = "Node name (first start; default 'node')" };
        var nbd = new Option<string?>("--nbd-listen") { Description = "NBD TCP address:port (default 127.0.0.1:10809; port 0 picks a free one and keeps it)" };
        var nbdTls = new Option<string?>("--nbd-tls") { Description = "TLS on the NBD TCP address: require (the default; clients show a certificate of the cluster) or off (loopback only); kept in node.json" };
        var admin = new Option<string?>("--admin-listen") { Description = "Admin HTTP address:port (default 127.0.0.1 with a free port, kept)" };
        var poolSize = new Option<string?>("--pool-size") { Description = "Capacity of the storage pool at first start (sparse file; default 64G)" };
        var parentPid = new Option<int?>("--parent-pid") { Description = "Stop when this process exits (cluster up passes its own pid)", Hidden = true };
        var checksums = new Option<bool?>("--block-checksums")
        {
            Description = "Store and check a checksum with every 4 KiB block (default true, kept in node.json); false only to measure what they cost",
        };
        var peerName = new Option<string?>("--peer-name") { Description = "The peer node's name (with --peer-id and one of --peer-address or --peer-listen: writes node.json's peer section)" };
        var peerId = new Option<Guid?>("--peer-id") { Description = "The peer node's id, as its certificate carries it ('replicator cert show' prints it)" };
        var peerAddress = new Option<string?>("--peer-address") { Description = "Dial the peer at address:port" };
        var peerListen = new Option<string?>("--peer-listen") { Description = "Accept the peer on address:port" };
        var peerAdmin = new Option<string?>("--peer-admin") { Description = "The peer's admin API (http://address:port), to show the whole pair" };
        var encryption = new Option<string?>("--peer-encryption") { Description = "auto (encrypted unless the peer address is loopback), tls, or off (loopback, or with --dedicated-link)" };
        var dedicated = new Option<bool>("--dedicated-link") { Description = "The peer address is a dedicated back-to-back cable: allows --peer-encryption off on it" };
        var witness = new Option<string?>("--witness") { Description = "The witness's address:port" };
        var command = new Command("run", "Run a storage node on DIR until Ctrl-C or SIGTERM; at the first start, a certificate in DIR/tls (replicator cert issue node) says who the node is")
        {
            dir, name, nbd, nbdTls, admin, poolSize, parentPid, checksums, peerName, peerId, peerAddress, peerListen, peerAdmin, encryption, dedicated, witness,
        };
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
                NbdTls = parse.GetValue(nbdTls),
                AdminListen = parse.GetValue(admin),
                PoolSize = pool,
                ParentPid = parse.GetValue(parentPid),
                BlockChecksums = parse.GetValue(checksums),
                Peer = parse.GetValue(peerName) is { } peer
                    ? new Configuration.PeerConfig
                    {
                        Name = peer,
                        NodeId = parse.GetValue(peerId),
                        Address = parse.GetValue(peerAddress),
                        Listen = parse.GetValue(peerListen),
                        Admin = parse.GetValue(peerAdmin),
                        Encryption = parse.GetValue(encryption) ?? Configuration.PeerConfig.EncryptionAuto,
                        DedicatedLink = parse.GetValue(dedicated),
                    }
                    : null,
                Witness = parse.GetValue(witness) is { } address ? new Configuration.WitnessConfig { Address = address } : null,
            }, ct);
        }));
        return command;
    }
}

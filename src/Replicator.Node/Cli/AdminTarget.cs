using System.CommandLine;
using System.Net;
using Replicator.Node.Admin;
using Replicator.Node.Cluster;
using Replicator.Node.Configuration;

namespace Replicator.Node.Cli;

/// <summary>
/// Works out which node an admin command talks to: <c>--admin URL</c> with <c>--token-file</c>, or
/// the node whose directory <c>--dir</c> names (admin address from its node.json, token from its
/// admin.token).
/// </summary>
internal sealed class AdminTarget
{
    public required Option<DirectoryInfo> Dir { get; init; }

    public required Option<string?> Admin { get; init; }

    public required Option<FileInfo?> TokenFile { get; init; }

    public required Option<string?> Node { get; init; }

    public static AdminTarget AddTo(Command command, bool dirRequired = false)
    {
        var target = new AdminTarget
        {
            Dir = CommonOptions.Dir(dirRequired, "The node's data directory (when the node is not named by --admin)"),
            Admin = CommonOptions.Admin(),
            TokenFile = CommonOptions.TokenFile(),
            Node = new Option<string?>("--node") { Description = "With --dir of a cluster: the node to ask (default: the first)" },
        };
        command.Options.Add(target.Dir);
        command.Options.Add(target.Admin);
        command.Options.Add(target.TokenFile);
        command.Options.Add(target.Node);
        return target;
    }

    /// <summary>Clients for every node of the cluster whose directory --dir names, or the one node named otherwise.</summary>
    public async Task<List<(string Name, AdminClient Client)>> ConnectAllAsync(ParseResult parse, CancellationToken ct)
    {
        if (parse.GetValue(Admin) is null && parse.GetValue(Dir) is { } dir && ClusterManifest.TryLoad(dir.FullName) is { } manifest)
        {
            var token = ReadToken(parse.GetValue(TokenFile)?.FullName ?? manifest.AdminTokenFile);
            return manifest.Nodes.Select(n => (n.Name, new AdminClient(new Uri(n.Admin), token, TimeSpan.FromSeconds(10)))).ToList();
        }

        var client = await TryConnectAsync(parse, ct) ?? throw new CliException(ExitCodes.Unreachable, "the node is not running");
        return [("", client)];
    }

    /// <summary>A client for the named node, or null when only a directory was given and no node runs on it.</summary>
    public async Task<AdminClient?> TryConnectAsync(ParseResult parse, CancellationToken ct)
    {
        var admin = CommonOptions.ParseAdmin(parse.GetValue(Admin));
        var tokenFile = parse.GetValue(TokenFile);
        var dir = parse.GetValue(Dir);
        if (admin is not null)
        {
            var path = tokenFile?.FullName ?? (dir is not null ? AdminToken.PathIn(dir.FullName) : null)
                ?? throw new CliException(ExitCodes.Usage, "--admin needs --token-file (or --dir of the node) for the bearer token");
            return new AdminClient(admin, ReadToken(path));
        }

        if (dir is null)
        {
            throw new CliException(ExitCodes.Usage, "name the node with --dir DIR or --admin URL");
        }

        if (ClusterManifest.TryLoad(dir.FullName) is { } manifest)
        {
            var name = parse.GetValue(Node) ?? manifest.Nodes[0].Name;
            var node = manifest.Nodes.FirstOrDefault(n => n.Name == name)
                ?? throw new CliException(ExitCodes.Usage, $"the cluster in {dir.FullName} has no node '{name}' (it has {string.Join(", ", manifest.Nodes.Select(n => n.Name))})");
            var clusterClient = new AdminClient(new Uri(node.Admin), ReadToken(tokenFile?.FullName ?? manifest.AdminTokenFile));
            await clusterClient.GetAsync<NodeInfo>("/node", ct);
            return clusterClient;
        }

        var config = NodeConfig.TryLoad(dir.FullName)
            ?? throw new CliException(ExitCodes.Usage, $"{dir.FullName} is not a node directory (no {NodeConfig.FileName})");
        var endpoint = IPEndPoint.Parse(config.AdminListen);
        if (endpoint.Port == 0)
        {
            return null;
        }

        var client = new AdminClient(new Uri($"http://{endpoint}"), ReadToken(tokenFile?.FullName ?? config.TokenPath(dir.FullName)), TimeSpan.FromSeconds(30));
        try
        {
            await client.GetAsync<NodeInfo>("/node", ct);
            return client;
        }
        catch (CliException e) when (e.ExitCode == ExitCodes.Unreachable)
        {
            client.Dispose();
            return null;
        }
    }

    private static string ReadToken(string path)
    {
        try
        {
            return AdminToken.Read(path);
        }
        catch (IOException e)
        {
            throw new CliException(ExitCodes.Usage, $"cannot read the admin token: {e.Message}");
        }
        catch (UnauthorizedAccessException e)
        {
            throw new CliException(ExitCodes.Usage, $"cannot read the admin token: {e.Message}");
        }
    }
}

using System.Reflection;
using Replicator.Node.Admin;
using Replicator.Node.Configuration;

namespace Replicator.Node.Roles;

/// <summary>Who this node is, as the admin API reports it.</summary>
internal sealed class NodeIdentity(NodeConfig config, string directory)
{
    public static string Version { get; } =
        typeof(NodeIdentity).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";

    public NodeConfig Config { get; } = config;

    public string Directory { get; } = directory;

    public NodeInfo Info => new(Config.Name, Config.NodeId, Config.ClusterId, Version, Environment.ProcessId,
        Config.NbdListen.Length > 0 ? $"nbd://{Config.NbdListen}" : string.Empty, Config.SocketPath(Directory));
}

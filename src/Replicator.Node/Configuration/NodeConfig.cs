using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Replicator.Node.Configuration;

/// <summary>
/// A node's configuration, kept in <c>DIR/node.json</c>. Written at the first start (ports chosen
/// then are kept), read at every start, and the same whether the node was started by
/// <c>cluster up</c> or by hand with <c>node run --dir</c>.
/// </summary>
internal sealed record NodeConfig
{
    public const string FileName = "node.json";

    public required string Name { get; init; }

    public required Guid NodeId { get; init; }

    public required Guid ClusterId { get; init; }

    /// <summary>TCP endpoint of the NBD server, e.g. <c>127.0.0.1:10809</c>; empty to serve only the Unix socket.</summary>
    public string NbdListen { get; init; } = "127.0.0.1:10809";

    /// <summary>Unix socket path of the NBD server, relative to the node directory.</summary>
    public string NbdSocket { get; init; } = "nbd.sock";

    /// <summary>Admin HTTP endpoint; loopback unless deliberately changed.</summary>
    public string AdminListen { get; init; } = "127.0.0.1:0";

    public long PoolFileCapacity { get; init; } = Core.Pool.PoolOptions.DefaultFileCapacity;

    public int ExtentSize { get; init; } = Core.Pool.PoolOptions.DefaultExtentSize;

    internal static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static string PathIn(string directory) => Path.Combine(directory, FileName);

    public static NodeConfig? TryLoad(string directory)
    {
        var path = PathIn(directory);
        if (!File.Exists(path))
        {
            return null;
        }

        NodeConfig? config;
        try
        {
            config = JsonSerializer.Deserialize<NodeConfig>(File.ReadAllText(path), JsonOptions);
        }
        catch (JsonException e)
        {
            throw new ConfigurationException($"{path} is not valid node configuration: {e.Message}");
        }

        if (config is null)
        {
            throw new ConfigurationException($"{path} is empty");
        }

        config.Validate(path);
        return config;
    }

    public void Save(string directory)
    {
        Validate(PathIn(directory));
        var temp = PathIn(directory) + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(this, JsonOptions));
        File.Move(temp, PathIn(directory), overwrite: true);
    }

    public string SocketPath(string directory) => Path.GetFullPath(NbdSocket, directory);

    private void Validate(string path)
    {
        if (string.IsNullOrWhiteSpace(Name) || Name.Length > 64)
        {
            throw new ConfigurationException($"{path}: the node name must be 1 to 64 characters");
        }

        if (NbdListen.Length > 0 && !IPEndPoint.TryParse(NbdListen, out _))
        {
            throw new ConfigurationException($"{path}: nbdListen '{NbdListen}' is not an address:port");
        }

        if (!IPEndPoint.TryParse(AdminListen, out _))
        {
            throw new ConfigurationException($"{path}: adminListen '{AdminListen}' is not an address:port");
        }
    }
}

/// <summary>Configuration that cannot be used; the message says what to fix.</summary>
internal sealed class ConfigurationException(string message) : Exception(message);

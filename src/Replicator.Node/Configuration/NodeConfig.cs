using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using Replicator.Protocol.Peer;

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

    /// <summary>Admin token file, relative to the node directory (<c>cluster up</c> shares one for the pair).</summary>
    public string AdminTokenFile { get; init; } = AdminToken.FileName;

    /// <summary>The peer node, when this node is one of a pair; null for a single node.</summary>
    public PeerConfig? Peer { get; init; }

    /// <summary>The witness that gives the third vote; null to run without one (a split brain is then possible, and detected).</summary>
    public WitnessConfig? Witness { get; init; }

    public long PoolFileCapacity { get; init; } = Core.Pool.PoolOptions.DefaultFileCapacity;

    public int ExtentSize { get; init; } = Core.Pool.PoolOptions.DefaultExtentSize;

    /// <summary>
    /// Store a checksum with every 4 KiB block and check it on every read (the default). false is a measurement
    /// option, for comparing against a node without checksums: such a node cannot tell a bad block from a good one,
    /// and says so loudly in its log, <c>status</c>, the admin API and the status page. Switching it back on
    /// computes the checksums from the data at the next start.
    /// </summary>
    public bool BlockChecksums { get; init; } = true;

    /// <summary>The background scrub of every volume on this node.</summary>
    public ScrubConfig Scrub { get; init; } = new();

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

    public string TokenPath(string directory) => Path.GetFullPath(AdminTokenFile, directory);

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

        Peer?.Validate(path, Name);
        Scrub.Validate(path);
        if (Witness is not null && !IPEndPoint.TryParse(Witness.Address, out _))
        {
            throw new ConfigurationException($"{path}: witness.address '{Witness.Address}' is not an address:port");
        }
    }
}

/// <summary>Configuration that cannot be used; the message says what to fix.</summary>
internal sealed class ConfigurationException(string message) : Exception(message);

/// <summary>
/// How a node reaches its peer. Exactly one of the two dials (the one with <see cref="Address"/>);
/// the other listens on <see cref="Listen"/>. A proxy between them (for link-cut tests) sits at
/// the dialer's <see cref="Address"/>.
/// </summary>
internal sealed record PeerConfig
{
    public required string Name { get; init; }

    /// <summary>Where this node accepts its peer's connection (address:port), or null if it dials.</summary>
    public string? Listen { get; init; }

    /// <summary>Where this node dials its peer (address:port), or null if it listens.</summary>
    public string? Address { get; init; }

    /// <summary>The peer's admin API (http://address:port), so this node can show the whole pair; optional.</summary>
    public string? Admin { get; init; }

    /// <summary>Seconds without any frame from the peer before it is declared gone.</summary>
    public double KeepaliveTimeoutSeconds { get; init; } = 2;

    /// <summary>
    /// Seconds a Pong lets this node serve paired reads locally, and at most how long the first write
    /// alone after a peer's sudden death waits; null for a quarter of <see cref="KeepaliveTimeoutSeconds"/>.
    /// Shorter makes a kill cheaper to fail over and costs more Pings (three per lease).
    /// </summary>
    public double? ReadLeaseSeconds { get; init; }

    /// <summary>What the peer connection runs with: the timeout, and the read lease (the default derived there).</summary>
    [JsonIgnore]
    public PeerConnectionOptions ConnectionOptions => new()
    {
        KeepaliveTimeout = TimeSpan.FromSeconds(KeepaliveTimeoutSeconds),
        ReadLease = ReadLeaseSeconds is { } lease ? TimeSpan.FromSeconds(lease) : null,
    };

    public void Validate(string path, string localName)
    {
        if (string.IsNullOrWhiteSpace(Name) || Name == localName)
        {
            throw new ConfigurationException($"{path}: peer.name must name the other node, not '{Name}'");
        }

        if ((Listen is null) == (Address is null))
        {
            throw new ConfigurationException($"{path}: the peer needs exactly one of peer.listen (this node accepts) or peer.address (this node dials)");
        }

        foreach (var (key, value) in new[] { ("listen", Listen), ("address", Address) })
        {
            if (value is not null && !IPEndPoint.TryParse(value, out _))
            {
                throw new ConfigurationException($"{path}: peer.{key} '{value}' is not an address:port");
            }
        }

        if (KeepaliveTimeoutSeconds is < 0.2 or > 600)
        {
            throw new ConfigurationException($"{path}: peer.keepaliveTimeoutSeconds must be between 0.2 and 600");
        }

        if (ReadLeaseSeconds is { } lease && (lease < 0.03 || lease > KeepaliveTimeoutSeconds))
        {
            throw new ConfigurationException(
                $"{path}: peer.readLeaseSeconds must be between 0.03 and the keepalive timeout ({KeepaliveTimeoutSeconds} s), or left out for a quarter of it");
        }
    }
}

/// <summary>When and how fast each volume is scrubbed (every allocated block read and checked, damage healed from the peer).</summary>
internal sealed record ScrubConfig
{
    /// <summary>Days from the end of one pass to the start of the next; 0 scrubs only when asked (<c>replicator scrub start</c>).</summary>
    public double IntervalDays { get; init; } = 7;

    /// <summary>Bytes per second a scrub may read, like <c>64M</c>; <c>0</c> for no cap. It also yields to client I/O.</summary>
    public string RateLimit { get; init; } = "64M";

    /// <summary>The interval, or null when scrubs run only when asked.</summary>
    [JsonIgnore]
    public TimeSpan? Interval => IntervalDays > 0 ? TimeSpan.FromDays(IntervalDays) : null;

    [JsonIgnore]
    public long RateLimitBytes => Core.ByteSize.TryParse(RateLimit, out var bytes) ? bytes : 0;

    public void Validate(string path)
    {
        if (IntervalDays is < 0 or > 3650 || double.IsNaN(IntervalDays))
        {
            throw new ConfigurationException($"{path}: scrub.intervalDays must be between 0 (only when asked) and 3650");
        }

        if (!Core.ByteSize.TryParse(RateLimit, out _))
        {
            throw new ConfigurationException($"{path}: scrub.rateLimit '{RateLimit}' is not a rate; write bytes per second like 64M, or 0 for no cap");
        }
    }
}

/// <summary>Where the witness listens (its HTTP API; the cluster's bearer token).</summary>
internal sealed record WitnessConfig
{
    public required string Address { get; init; }
}

using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using Replicator.Core.Storage;
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

    /// <summary>TLS on the TCP end point, the Unix socket's group, the connection caps (see docs/nbd-tls.md).</summary>
    public NbdConfig Nbd { get; init; } = new();

    /// <summary>Admin HTTP endpoint; loopback unless deliberately changed.</summary>
    public string AdminListen { get; init; } = "127.0.0.1:0";

    /// <summary>Admin token file, relative to the node directory (<c>cluster up</c> shares one for the pair).</summary>
    public string AdminTokenFile { get; init; } = AdminToken.FileName;

    /// <summary>The peer node, when this node is one of a pair; null for a single node.</summary>
    public PeerConfig? Peer { get; init; }

    /// <summary>The witness that gives the third vote; null to run without one (a split brain is then possible, and detected).</summary>
    public WitnessConfig? Witness { get; init; }

    /// <summary>Where this node's certificate, key and the cluster's authority are, and its revocation list (see docs/security.md).</summary>
    public TlsConfig Tls { get; init; } = new();

    /// <summary>The largest volume this node creates, grows to, or accepts from its peer, in bytes.</summary>
    public long MaxVolumeSize { get; init; } = DefaultMaxVolumeSize;

    /// <summary>64 TiB: a fully dirty volume of that size costs 2 GiB of bitmap in memory.</summary>
    public const long DefaultMaxVolumeSize = 64L << 40;

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

    public void Save(string directory) => Save(PhysicalFileSystem.Instance, directory);

    /// <summary>Replaces node.json atomically and durably: a crash leaves the old file or the new one.</summary>
    internal void Save(IFileSystem files, string directory)
    {
        Validate(PathIn(directory));
        files.WriteAtomically(PathIn(directory), JsonSerializer.SerializeToUtf8Bytes(this, JsonOptions));
    }

    public string SocketPath(string directory) => Path.GetFullPath(NbdSocket, directory);

    /// <summary>Why a volume of <paramref name="size"/> bytes may not exist on this node, or null when it may.</summary>
    public string? VolumeSizeProblem(long size) => size > MaxVolumeSize
        ? $"a volume of {Core.ByteSize.Format(size)} ({size} bytes) is larger than this node allows (maxVolumeSize {Core.ByteSize.Format(MaxVolumeSize)} in node.json)"
        : null;

    /// <summary>Throws when a volume of <paramref name="size"/> bytes may not exist on this node (see <see cref="MaxVolumeSize"/>).</summary>
    /// <exception cref="ArgumentException">It is larger than <see cref="MaxVolumeSize"/>.</exception>
    public void RequireVolumeSize(long size)
    {
        if (VolumeSizeProblem(size) is { } problem)
        {
            throw new ArgumentException(problem);
        }
    }

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

        (Nbd ?? throw new ConfigurationException($"{path}: nbd must be an object, or be left out")).Validate(path, NbdListen);
        if (!IPEndPoint.TryParse(AdminListen, out _))
        {
            throw new ConfigurationException($"{path}: adminListen '{AdminListen}' is not an address:port");
        }

        Peer?.Validate(path, Name);
        if (MaxVolumeSize < Core.Volumes.VolumeNames.SizeAlignment || MaxVolumeSize > Core.Replication.DirtyBitmap.MaxVolumeSize)
        {
            throw new ConfigurationException($"{path}: maxVolumeSize must be between {Core.Volumes.VolumeNames.SizeAlignment} bytes and {Core.ByteSize.Format(Core.Replication.DirtyBitmap.MaxVolumeSize)}");
        }

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

    /// <summary>
    /// The peer's node id: its certificate must carry it (and <see cref="Name"/>) before anything it
    /// sends is read. Required to start; <c>replicator cert show</c> on the peer's certificate prints it.
    /// </summary>
    public Guid? NodeId { get; init; }

    /// <summary>
    /// Whether the link stays encrypted (TLS 1.3) after both nodes authenticated: <c>auto</c> (the
    /// default) encrypts unless this node's peer address is a loopback one, <c>tls</c> always, <c>off</c>
    /// never. The link is encrypted when either node asks. Authentication happens either way.
    /// </summary>
    public string Encryption { get; init; } = EncryptionAuto;

    public const string EncryptionAuto = "auto";
    public const string EncryptionOn = "tls";
    public const string EncryptionOff = "off";

    /// <summary>
    /// Declares the peer address a dedicated back-to-back cable between the two hosts, which nothing
    /// else can reach: the only place <c>encryption: off</c> is allowed on an address that is not loopback.
    /// </summary>
    public bool DedicatedLink { get; init; }

    /// <summary>Request payload bytes this node takes in from its peer at once (its receive window); beyond it the peer waits.</summary>
    public long ReceiveWindowBytes { get; init; } = PeerConnectionOptions.DefaultReceiveWindow;

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
        ReceiveWindow = ReceiveWindowBytes,
    };

    /// <summary>The address this node's side of the link uses: where it dials, or where it listens.</summary>
    [JsonIgnore]
    public IPEndPoint LinkEndPoint => IPEndPoint.Parse(Address ?? Listen!);

    /// <summary>Whether this node asks for the link to stay encrypted (see <see cref="Encryption"/>).</summary>
    [JsonIgnore]
    public bool WantsEncryption => Encryption switch
    {
        EncryptionOn => true,
        EncryptionOff => false,
        _ => !IPAddress.IsLoopback(LinkEndPoint.Address),
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

        if (Encryption is not (EncryptionAuto or EncryptionOn or EncryptionOff))
        {
            throw new ConfigurationException($"{path}: peer.encryption is '{Encryption}'; it is one of '{EncryptionAuto}' (encrypted unless the peer address is loopback), '{EncryptionOn}' or '{EncryptionOff}'");
        }

        if (Encryption == EncryptionOff && !IPAddress.IsLoopback(LinkEndPoint.Address) && !DedicatedLink)
        {
            throw new ConfigurationException(
                $"{path}: peer.encryption is 'off' but the peer link uses {LinkEndPoint}, which is not a loopback address: every block would cross the network in clear, "
                + "and anyone on the path could read it and, after the handshake, alter it. Turn encryption on, or, only if this address is a dedicated back-to-back cable "
                + "between the two hosts that nothing else reaches, say so with peer.dedicatedLink: true (see docs/security.md)");
        }

        if (ReceiveWindowBytes is < 1 << 20 or > 1L << 32)
        {
            throw new ConfigurationException($"{path}: peer.receiveWindowBytes must be between 1 MiB and 4 GiB");
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

/// <summary>Where the witness listens (its HTTPS API; each node authenticates with its own certificate).</summary>
internal sealed record WitnessConfig
{
    public required string Address { get; init; }
}

/// <summary>
/// A node's TLS files (see docs/security.md): <see cref="Directory"/> holds <c>ca-cert.pem</c>,
/// <c>server-cert.pem</c> and <c>server-key.pem</c>; <see cref="RevocationList"/> is the cluster's list
/// of revoked certificates, read at every handshake. Paths are relative to the node's directory.
/// </summary>
internal sealed record TlsConfig
{
    public const string DefaultDirectory = "tls";
    public const string RevocationFileName = "revoked.json";

    public string Directory { get; init; } = DefaultDirectory;

    /// <summary>The revocation list; null for <c>revoked.json</c> in <see cref="Directory"/>.</summary>
    public string? RevocationList { get; init; }

    public string DirectoryPath(string nodeDirectory) => Path.GetFullPath(Directory, nodeDirectory);

    public string RevocationPath(string nodeDirectory) =>
        Path.GetFullPath(RevocationList ?? Path.Combine(Directory, RevocationFileName), nodeDirectory);
}

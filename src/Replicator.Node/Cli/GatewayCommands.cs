using System.CommandLine;
using System.Globalization;
using Replicator.Node.Gateway;
using Replicator.Node.Roles;

namespace Replicator.Node.Cli;

/// <summary><c>replicator gateway</c>.</summary>
internal static class GatewayCommands
{
    /// <summary>The .NET runtime's switch that runs socket completions on its socket engine threads.</summary>
    private const string InlineSocketCompletions = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>
    /// Makes the gateway run each socket completion (a request read from a client, a reply read from a node) on the
    /// runtime's socket engine thread instead of handing it to a thread-pool worker. The gateway does no disk I/O: what
    /// a completion runs is a few microseconds of parsing and forwarding to another socket, and the hand-off cost a
    /// context switch per completion that took more of the gateway's CPU than the forwarding (perf, 4 KiB reads at
    /// queue depth 32: 20 µs of CPU per I/O, 1.4 context switches; inline, 13 µs and 0.5). A storage node does not do
    /// this: its completions go on to write and fsync files, which would stall every socket of the process.
    /// </summary>
    /// <remarks>
    /// The runtime reads the switch once, when the process first uses a socket, so this runs before anything else of
    /// the gateway. A value already in the environment wins, so an operator can turn it off with <c>=0</c>.
    /// </remarks>
    internal static void PrepareProcess()
    {
        if (Environment.GetEnvironmentVariable(InlineSocketCompletions) is null)
        {
            Environment.SetEnvironmentVariable(InlineSocketCompletions, "1");
        }
    }

    public static Command Build()
    {
        var defaults = new GatewayOptions();
        var cluster = new Option<DirectoryInfo?>("--cluster") { Description = "A cluster directory (cluster up): nodes from its cluster.json, settings kept in its gateway.json" };
        var node = new Option<string[]>("--node")
        {
            Description = "A node, as NAME=NBD_URI,admin=URL (give two), instead of the cluster's",
            AllowMultipleArgumentsPerToken = false,
        };
        var tokenFile = CommonOptions.TokenFile();
        var socket = new Option<string?>("--socket") { Description = "Unix socket to serve NBD on (default DIR/gateway.sock)" };
        var nbd = new Option<string?>("--nbd-listen") { Description = "Also serve NBD on this TCP address:port, over TLS unless --nbd-tls off (port 0 picks a free one and keeps it)" };
        var nbdTls = new Option<string?>("--nbd-tls") { Description = "TLS on the NBD TCP address: require (the default; clients show a certificate of the cluster) or off (loopback only)" };
        var tls = new Option<string?>("--tls") { Description = "The gateway's certificate directory (ca-cert.pem, server-cert.pem, server-key.pem; default DIR/tls/gateway): serves TLS, and dials nodes over TCP with it" };
        var revocations = new Option<string?>("--revocation-list") { Description = "The cluster's revocation list (default DIR/tls/revoked.json, or revoked.json beside --tls)" };
        var admin = new Option<string?>("--admin-listen") { Description = "Status endpoint address:port, GET /api/v1/gateway (default 127.0.0.1 with a free port, kept)" };
        var timeout = Duration("--timeout", "A request unanswered this long fails its node over to the other", defaults.Timeout);
        var holdDown = Duration("--hold-down", "Least time between two moves of a volume not forced by a failure (failback, preferred node changed)", defaults.HoldDown);
        var noPath = Duration("--no-path-timeout", "How long a request waits for any node to serve it before the client gets EIO", defaults.NoPathTimeout);
        var connections = new Option<int>("--connections") { Description = "NBD connections per node per volume", DefaultValueFactory = _ => defaults.ConnectionsPerNode };
        var parentPid = new Option<int?>("--parent-pid") { Description = "Stop when this process exits (cluster up passes its own pid)", Hidden = true };
        var command = new Command("gateway", "Export every volume as a local NBD export that fails over between the two nodes without the client noticing")
        {
            cluster, node, tokenFile, socket, nbd, nbdTls, tls, revocations, admin, timeout, holdDown, noPath, connections, parentPid,
        };
        command.SetAction((parse, ct) => CliRunner.RunAsync(() =>
        {
            var nodes = parse.GetValue(node) is { Length: > 0 } specs ? specs.Select(GatewayRole.ParseNode).ToList() : null;
            if (parse.GetValue(cluster) is null && parse.GetValue(socket) is null)
            {
                throw new CliException(ExitCodes.Usage, "without --cluster, name the Unix socket to serve on with --socket");
            }

            var options = defaults with
            {
                Timeout = ParseDuration(parse.GetValue(timeout)!),
                HoldDown = ParseDuration(parse.GetValue(holdDown)!),
                NoPathTimeout = ParseDuration(parse.GetValue(noPath)!),
                ConnectionsPerNode = parse.GetValue(connections),
            };
            return GatewayRole.RunAsync(new GatewayRunSettings(options)
            {
                ClusterDirectory = parse.GetValue(cluster)?.FullName,
                Nodes = nodes,
                TokenFile = parse.GetValue(tokenFile)?.FullName,
                SocketPath = parse.GetValue(socket),
                NbdListen = parse.GetValue(nbd),
                NbdTls = parse.GetValue(nbdTls),
                TlsDirectory = parse.GetValue(tls),
                RevocationList = parse.GetValue(revocations),
                AdminListen = parse.GetValue(admin),
                ParentPid = parse.GetValue(parentPid),
            }, ct);
        }));
        return command;
    }

    /// <summary>A duration written as <c>2s</c>, <c>500ms</c>, <c>1m</c> or a plain number of seconds.</summary>
    public static TimeSpan ParseDuration(string text)
    {
        var trimmed = text.Trim();
        var (number, unit) = trimmed.EndsWith("ms", StringComparison.Ordinal) ? (trimmed[..^2], 0.001)
            : trimmed.EndsWith('s') ? (trimmed[..^1], 1.0)
            : trimmed.EndsWith('m') ? (trimmed[..^1], 60.0)
            : (trimmed, 1.0);
        return double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value >= 0 && double.IsFinite(value)
            ? TimeSpan.FromSeconds(value * unit)
            : throw new CliException(ExitCodes.Usage, $"'{text}' is not a duration; write it like 2s, 500ms or 1m");
    }

    private static Option<string> Duration(string name, string description, TimeSpan value) => new(name)
    {
        Description = description,
        DefaultValueFactory = _ => value.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + "s",
    };
}

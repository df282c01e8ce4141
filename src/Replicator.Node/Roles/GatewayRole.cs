using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Replicator.Node.Admin;
using Replicator.Node.Cli;
using Replicator.Node.Cluster;
using Replicator.Node.Configuration;
using Replicator.Node.Gateway;
using Replicator.Node.Hosting;
using Replicator.Node.Metrics;
using Replicator.Node.Security;
using Replicator.Protocol.Nbd.Client;

namespace Replicator.Node.Roles;

/// <summary>What <c>replicator gateway</c> was told on its command line; null means "from the cluster directory".</summary>
internal sealed record GatewayRunSettings(GatewayOptions Options)
{
    /// <summary>A <c>cluster up</c> directory: nodes from its cluster.json, listen addresses from its gateway.json.</summary>
    public string? ClusterDirectory { get; init; }

    /// <summary>Nodes given with <c>--node</c>, instead of (or over) the cluster's.</summary>
    public IReadOnlyList<GatewayNode>? Nodes { get; init; }

    public string? TokenFile { get; init; }

    public string? SocketPath { get; init; }

    public string? NbdListen { get; init; }

    /// <summary>gateway.json's <c>nbd.tls</c>: <c>require</c> or <c>off</c>.</summary>
    public string? NbdTls { get; init; }

    /// <summary>The gateway's certificate directory, instead of the cluster's <c>tls/gateway</c>.</summary>
    public string? TlsDirectory { get; init; }

    /// <summary>The revocation list, instead of the cluster's.</summary>
    public string? RevocationList { get; init; }

    public string? AdminListen { get; init; }

    public int? ParentPid { get; init; }
}

/// <summary>
/// <c>replicator gateway</c>, on the hypervisor host: exports every volume of the node pair as a local NBD export
/// (Unix socket, and loopback TCP if asked) and sends each volume's I/O to one node, failing over to the other and
/// back (see <see cref="GatewayVolume"/>). Its status is at <c>GET /api/v1/gateway</c> on a loopback admin endpoint
/// that takes the nodes' bearer token.
/// </summary>
internal static class GatewayRole
{
    public const string StatusPath = AdminApi.Prefix + "/gateway";

    public static async Task<int> RunAsync(GatewayRunSettings settings, CancellationToken ct)
    {
        try
        {
            settings.Options.Validate();
        }
        catch (ArgumentException e)
        {
            throw new CliException(ExitCodes.Usage, e.Message);
        }

        var directory = settings.ClusterDirectory is { } dir ? Path.GetFullPath(dir) : null;
        var manifest = directory is null ? null
            : ClusterManifest.TryLoad(directory) ?? throw new ConfigurationException($"{directory} has no {ClusterManifest.FileName}; start the cluster with 'replicator cluster up --dir {directory}'");
        var nodes = settings.Nodes ?? manifest?.Nodes.Select(n => new GatewayNode(n.Name, new NbdUri(new UnixDomainSocketEndPoint(n.NbdSocket), ""), new Uri(n.Admin))).ToList()
            ?? throw new CliException(ExitCodes.Usage, "name the nodes with --cluster DIR or --node NAME=NBD_URI,admin=URL (twice)");
        var token = AdminToken.Read(settings.TokenFile ?? manifest?.AdminTokenFile
            ?? throw new CliException(ExitCodes.Usage, "--node needs --token-file for the nodes' admin token"));

        var config = (directory is null ? null : GatewayConfig.TryLoad(directory)) ?? new GatewayConfig();
        config = config with
        {
            NbdSocket = settings.SocketPath ?? config.NbdSocket,
            NbdListen = settings.NbdListen ?? config.NbdListen,
            AdminListen = settings.AdminListen ?? config.AdminListen,
            Nbd = settings.NbdTls is { } tls ? config.Nbd with { Tls = tls } : config.Nbd,
        };
        var configPath = directory is null ? "the gateway's settings" : Path.Combine(directory, GatewayConfig.FileName);
        if (directory is not null)
        {
            config.Save(directory);
        }
        else
        {
            config.Validate(configPath);
        }

        var credentials = GatewayTls.Load(directory, settings.TlsDirectory, settings.RevocationList);
        var securedNodes = GatewayTls.Secure(nodes, credentials);
        var nbdOptions = NbdSecurity.ServerOptions(config.Nbd, configPath, config.NbdListen, credentials?.Credentials, credentials?.Trust, NbdSecurity.GatewayClients);

        var socketPath = directory is null ? Path.GetFullPath(config.NbdSocket) : config.SocketPath(directory);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ContentRootPath = AppContext.BaseDirectory,
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
        });
        NodeLogging.Configure(builder.Logging);
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPEndPoint.Parse(config.AdminListen)));
        var catalog = new GatewayCatalog();
        builder.Services.AddSingleton(new GatewayMetrics(catalog, nodes));
        builder.Services.AddSingleton(sp => new GatewayService(securedNodes(sp.GetRequiredService<ILoggerFactory>().CreateLogger("Replicator.Gateway.NbdTls")),
            token, catalog, settings.Options, sp.GetRequiredService<ILogger<GatewayService>>()));
        builder.Services.AddHostedService(sp => sp.GetRequiredService<GatewayService>());
        builder.Services.AddHostedService(sp => new NbdHostedService(catalog, Endpoints(config, socketPath),
            nbdOptions(sp.GetRequiredService<ILoggerFactory>().CreateLogger("Replicator.Gateway.NbdTls")), sp.GetRequiredService<ILoggerFactory>(),
            bound => SaveChosenNbdPort(directory, bound)));
        if (settings.ParentPid is { } parent)
        {
            builder.Services.AddHostedService(sp => new ParentWatch(parent, sp.GetRequiredService<IHostApplicationLifetime>(),
                sp.GetRequiredService<ILogger<ParentWatch>>()));
        }

        await using var app = builder.Build();
        app.UseMiddleware<BearerTokenAuth>(token);
        app.MapGet(StatusPath, (GatewayService service) => new GatewayStatus(
            Environment.ProcessId, socketPath, config.TcpUri,
            settings.Options.Timeout.TotalSeconds, settings.Options.HoldDown.TotalSeconds, settings.Options.ConnectionsPerNode,
            service.DescribeNodes(), [.. catalog.Volumes.Select(v => v.Describe())]));
        app.MapGet("/metrics", (GatewayMetrics metrics) => Results.Text(metrics.Exporter.Render(), "text/plain; version=0.0.4; charset=utf-8"));
        await app.StartAsync(ct);

        var admin = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        if (directory is not null && IPEndPoint.Parse(config.AdminListen).Port == 0)
        {
            var chosen = new IPEndPoint(IPEndPoint.Parse(config.AdminListen).Address, new Uri(admin).Port);
            (GatewayConfig.TryLoad(directory)! with { AdminListen = chosen.ToString() }).Save(directory);
        }

        app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Replicator.Gateway").LogInformation(
            "Gateway ready: attach with nbd+unix:///<volume>?socket={Socket}; status at {Admin}{Path}", socketPath, admin, StatusPath);
        await app.WaitForShutdownAsync(ct);
        return ExitCodes.Ok;
    }

    private static List<EndPoint> Endpoints(GatewayConfig config, string socketPath)
    {
        var list = new List<EndPoint> { new UnixDomainSocketEndPoint(socketPath) };
        if (config.NbdListen.Length > 0)
        {
            list.Add(IPEndPoint.Parse(config.NbdListen));
        }

        return list;
    }

    /// <summary>A TCP port asked for as 0 is chosen at the first start and kept from then on.</summary>
    private static void SaveChosenNbdPort(string? directory, IReadOnlyList<EndPoint> bound)
    {
        if (directory is null || GatewayConfig.TryLoad(directory) is not { } config || config.NbdListen.Length == 0
            || IPEndPoint.Parse(config.NbdListen).Port != 0 || bound.OfType<IPEndPoint>().FirstOrDefault() is not { } tcp)
        {
            return;
        }

        (config with { NbdListen = tcp.ToString() }).Save(directory);
    }

    /// <summary>Parses <c>NAME=NBD_URI,admin=URL</c>, e.g. <c>a=nbd://127.0.0.1:10809,admin=http://127.0.0.1:7100</c>.</summary>
    public static GatewayNode ParseNode(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var equals = parts.Length > 0 ? parts[0].IndexOf('=', StringComparison.Ordinal) : -1;
        var admin = parts.Skip(1).Select(p => p.Split('=', 2)).FirstOrDefault(kv => kv.Length == 2 && kv[0] == "admin")?[1];
        if (equals <= 0 || admin is null || !Uri.TryCreate(admin, UriKind.Absolute, out var adminUri)
            || !NbdUri.TryParse(parts[0][(equals + 1)..], out var nbd, out _))
        {
            throw new CliException(ExitCodes.Usage, $"--node '{text}' is not NAME=NBD_URI,admin=URL (e.g. a=nbd://127.0.0.1:10809,admin=http://127.0.0.1:7100)");
        }

        return new GatewayNode(parts[0][..equals], nbd, adminUri);
    }
}

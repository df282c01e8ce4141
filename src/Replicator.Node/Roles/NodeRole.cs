using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Replicator.Core.Replication;
using Replicator.Core.Storage;
using Replicator.Node.Admin;
using Replicator.Node.Configuration;
using Replicator.Node.Hosting;
using Replicator.Node.Metrics;
using Replicator.Node.Replication;
using Replicator.Node.Security;
using Replicator.Node.Storage;
using Replicator.Node.Witness;
using Replicator.Protocol.Security;

namespace Replicator.Node.Roles;

/// <summary>Settings given on the command line of <c>replicator node run</c>; null means "keep node.json's value".</summary>
internal sealed record NodeRunSettings(string Directory)
{
    public string? Name { get; init; }

    public string? NbdListen { get; init; }

    /// <summary>node.json's <c>nbd.tls</c>: <c>require</c> or <c>off</c>.</summary>
    public string? NbdTls { get; init; }

    public string? AdminListen { get; init; }

    public long? PoolSize { get; init; }

    /// <summary>Stop when this process is gone (set by cluster up, so its nodes never outlive it).</summary>
    public int? ParentPid { get; init; }

    /// <summary>Block checksums on or off (a measurement option); kept in node.json.</summary>
    public bool? BlockChecksums { get; init; }

    /// <summary>The peer section to write into node.json (replacing the one there), as given on the command line.</summary>
    public PeerConfig? Peer { get; init; }

    /// <summary>The witness to write into node.json.</summary>
    public WitnessConfig? Witness { get; init; }
}

/// <summary>
/// <c>replicator node run</c>: one storage node. Hosts the pool and its volumes, the NBD server
/// (TCP and Unix socket) and the admin HTTP API, until SIGINT or SIGTERM.
/// </summary>
internal static class NodeRole
{
    public const string PidFileName = "node.pid";

    public static async Task<int> RunAsync(NodeRunSettings settings, CancellationToken ct)
    {
        var directory = Path.GetFullPath(settings.Directory);
        PhysicalFileSystem.Instance.CreateDirectory(directory);
        var config = LoadConfig(directory, settings);
        var token = AdminToken.LoadOrCreate(config.TokenPath(directory));
        var security = NodeSecurity.Load(config, directory);

        // The content root is the install directory, never the data directory: configuration
        // reload would otherwise watch the pool files and wake on every write.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ContentRootPath = AppContext.BaseDirectory,
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
        });
        NodeLogging.Configure(builder.Logging);
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPEndPoint.Parse(config.AdminListen)));
        builder.Services.AddSingleton(config);
        builder.Services.AddSingleton(new NodeIdentity(config, directory));
        if (security is not null)
        {
            builder.Services.AddSingleton(security);
        }

        builder.Services.AddSingleton(sp => new NodeStorage(directory, config, sp.GetRequiredService<ILogger<NodeStorage>>()));
        if (config.Witness is not null)
        {
            builder.Services.AddSingleton<IWriteQuorum>(sp => new WitnessQuorum(config, security!, sp.GetRequiredService<ILogger<WitnessQuorum>>(),
                () => sp.GetRequiredService<ReplicationManager>().Volumes));
        }
        else
        {
            builder.Services.AddSingleton<IWriteQuorum>(NoWitnessQuorum.Instance);
        }
        builder.Services.AddSingleton(sp => new ReplicationManager(sp.GetRequiredService<NodeStorage>().Files, directory, config, sp.GetRequiredService<NodeStorage>().Pool,
            sp.GetRequiredService<IWriteQuorum>(), sp.GetRequiredService<ILoggerFactory>()));
        builder.Services.AddSingleton<NodeTelemetry>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<NodeTelemetry>());
        builder.Services.AddSingleton(sp => new VolumeExports(sp.GetRequiredService<ReplicationManager>(), sp.GetRequiredService<NodeTelemetry>()));
        if (config.Peer is not null)
        {
            builder.Services.AddHostedService<PeerLink>();
        }

        builder.Services.AddHostedService(sp => new PoolSpaceWatch(sp.GetRequiredService<NodeStorage>(), sp.GetRequiredService<ReplicationManager>(),
            sp.GetRequiredService<ILogger<PoolSpaceWatch>>()));

        var nbdOptions = NbdSecurity.ServerOptions(config.Nbd, NodeConfig.PathIn(directory), config.NbdListen, security?.Credentials, security?.Trust, NbdSecurity.NodeClients);
        builder.Services.AddHostedService(sp => new NbdHostedService(
            sp.GetRequiredService<VolumeExports>(),
            NbdHostedService.Endpoints(config, directory),
            nbdOptions(sp.GetRequiredService<ILoggerFactory>().CreateLogger("Replicator.Node.NbdTls")),
            sp.GetRequiredService<ILoggerFactory>(),
            endpoints => SaveChosenNbdPort(directory, endpoints)));
        builder.Services.AddProblemDetails();
        builder.Services.AddOpenApi("v1", o => o.AddDocumentTransformer((document, _, _) =>
        {
            document.Info = new() { Title = "Replicator node admin API", Version = "v1", Description = "Every request needs 'Authorization: Bearer <token>'." };
            return Task.CompletedTask;
        }));
        builder.Services.AddSingleton(sp => new ClusterViewBuilder(config, token, security, sp.GetRequiredService<NodeIdentity>(), sp.GetRequiredService<NodeStorage>(),
            sp.GetRequiredService<ReplicationManager>(), sp.GetRequiredService<VolumeExports>()));
        if (settings.ParentPid is { } parent)
        {
            builder.Services.AddHostedService(sp => new ParentWatch(parent, sp.GetRequiredService<IHostApplicationLifetime>(),
                sp.GetRequiredService<ILogger<ParentWatch>>()));
        }

        await using var app = builder.Build();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Replicator.Node");
        try
        {
            // Open the pool and the replicas before anything listens, so damage fails the start with a clear message.
            app.Services.GetRequiredService<VolumeExports>();
        }
        catch (StorageDamagedException e)
        {
            logger.LogCritical(
                "Cannot open the storage of node {Name} in {Directory}: {Message}. Recover by bringing this replica back from its peer{Peer}: " +
                "'replicator node rebuild --dir {Directory} --yes' sets the damaged files aside, then 'replicator node run --dir {Directory}' " +
                "starts the node empty and every volume comes back by a full resync (see docs/recovery.md)",
                config.Name, directory, e.Message, config.Peer is { } peer ? $" {peer.Name}" : " (this node has none: restore it from a backup)", directory, directory);
            return Cli.ExitCodes.Failed;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            logger.LogCritical("Cannot open the storage pool in {Directory}: {Message}", directory, e.Message);
            return Cli.ExitCodes.Failed;
        }

        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseMiddleware<StatusPage>();
        app.UseMiddleware<BearerTokenAuth>(token);
        app.MapAdminApi();
        app.MapOpenApi("/api/v1/openapi.json");
        app.MapGet("/metrics", (NodeTelemetry telemetry) => Results.Text(telemetry.Exporter.Render(), "text/plain; version=0.0.4; charset=utf-8"));
        await app.StartAsync(ct);

        var admin = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        SaveChosenAdminPort(directory, new Uri(admin).Port);
        await File.WriteAllTextAsync(Path.Combine(directory, PidFileName), Environment.ProcessId.ToString(CultureInfo.InvariantCulture), ct);
        logger.LogInformation("Node {Name} ready: admin {Admin}, data in {Directory}", config.Name, admin, directory);

        await app.WaitForShutdownAsync(ct);
        File.Delete(Path.Combine(directory, PidFileName));
        return Cli.ExitCodes.Ok;
    }

    private static NodeConfig LoadConfig(string directory, NodeRunSettings s)
    {
        var existing = NodeConfig.TryLoad(directory);
        var config = existing ?? NewConfig(directory, s);
        config = config with
        {
            Name = s.Name ?? config.Name,
            NbdListen = s.NbdListen ?? config.NbdListen,
            AdminListen = s.AdminListen ?? config.AdminListen,
            Nbd = s.NbdTls is { } tls ? config.Nbd with { Tls = tls } : config.Nbd,
            PoolFileCapacity = existing is null ? s.PoolSize ?? config.PoolFileCapacity : config.PoolFileCapacity,
            BlockChecksums = s.BlockChecksums ?? config.BlockChecksums,
            Peer = s.Peer ?? config.Peer,
            Witness = s.Witness ?? config.Witness,
        };
        config.Save(directory);
        return config;
    }

    /// <summary>
    /// A first start. With a certificate already in <c>DIR/tls</c> (the bundle an admin issued for this
    /// node and copied here), the node is who the certificate says: its name, id and cluster; otherwise
    /// a new node of a new cluster.
    /// </summary>
    private static NodeConfig NewConfig(string directory, NodeRunSettings s)
    {
        var bundle = new TlsDirectory(new TlsConfig().DirectoryPath(directory));
        if (!bundle.Exists)
        {
            return new NodeConfig { Name = s.Name ?? "node", NodeId = Guid.NewGuid(), ClusterId = Guid.NewGuid() };
        }

        ClusterIdentity identity;
        try
        {
            identity = bundle.Load().Identity;
        }
        catch (TlsSetupException e)
        {
            throw new ConfigurationException($"{bundle.Path} holds a certificate this node cannot use: {e.Message}");
        }

        if (identity.Role != IdentityRole.Node || (s.Name is { } name && name != identity.Name))
        {
            throw new ConfigurationException($"{bundle.CertificatePath} is the certificate of the {identity}, not of node '{s.Name ?? identity.Name}'");
        }

        return new NodeConfig { Name = identity.Name, NodeId = identity.Id, ClusterId = identity.ClusterId };
    }

    /// <summary>A port asked for as 0 is chosen at the first start and kept from then on.</summary>
    private static void SaveChosenAdminPort(string directory, int port)
    {
        var config = NodeConfig.TryLoad(directory)!;
        var endpoint = IPEndPoint.Parse(config.AdminListen);
        if (endpoint.Port == 0)
        {
            (config with { AdminListen = new IPEndPoint(endpoint.Address, port).ToString() }).Save(directory);
        }
    }

    private static void SaveChosenNbdPort(string directory, IReadOnlyList<EndPoint> bound)
    {
        var config = NodeConfig.TryLoad(directory)!;
        if (config.NbdListen.Length > 0 && IPEndPoint.Parse(config.NbdListen).Port == 0
            && bound.OfType<IPEndPoint>().FirstOrDefault() is { } tcp)
        {
            (config with { NbdListen = tcp.ToString() }).Save(directory);
        }
    }
}

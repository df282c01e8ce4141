using System.Globalization;
using System.Net;
using Replicator.Core.Storage;
using Replicator.Node.Configuration;
using Replicator.Node.Hosting;
using Replicator.Node.Security;
using Replicator.Node.Witness;
using Replicator.Protocol.Security;

namespace Replicator.Node.Roles;

/// <param name="Directory">Where the votes are kept.</param>
/// <param name="Listen">The HTTPS address:port.</param>
/// <param name="TlsDirectory">The witness's certificate, key and the cluster's authority.</param>
/// <param name="RevocationList">The cluster's revocation list; null for <c>revoked.json</c> in <paramref name="TlsDirectory"/>.</param>
internal sealed record WitnessSettings(string Directory, string Listen, string TlsDirectory, string? RevocationList, TimeSpan Lease, int? ParentPid);

/// <summary>
/// <c>replicator witness</c>: the third vote. Keeps, per volume, which node may write it without
/// its peer (see <see cref="WitnessBook"/>), in <c>DIR/votes.json</c>, behind mutual TLS: every
/// caller presents a certificate of the cluster's authority, and a node moves only its own vote
/// (see <see cref="WitnessAccess"/>). The admin token plays no part here.
/// </summary>
internal static partial class WitnessRole
{
    public static async Task<int> RunAsync(WitnessSettings settings, CancellationToken ct)
    {
        var directory = Path.GetFullPath(settings.Directory);
        PhysicalFileSystem.Instance.CreateDirectory(directory);
        var listen = IPEndPoint.Parse(settings.Listen);
        var credentials = new TlsDirectory(Path.GetFullPath(settings.TlsDirectory, directory));
        TlsMaterial own;
        try
        {
            own = credentials.Load();
        }
        catch (TlsSetupException e)
        {
            throw new ConfigurationException($"the witness listens only with TLS, and cannot on {listen}: {e.Message}");
        }

        if (own.Identity.Role != IdentityRole.Witness)
        {
            throw new ConfigurationException($"{credentials.CertificatePath} is the certificate of the {own.Identity}, not of a witness");
        }

        var revocations = new RevocationList(Path.GetFullPath(settings.RevocationList ?? Path.Combine(credentials.Path, TlsConfig.RevocationFileName), directory));
        var trust = new ClusterTrust(own.Identity.ClusterId, () => credentials.Load().Authorities, revocations);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ContentRootPath = AppContext.BaseDirectory,
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
        });
        NodeLogging.Configure(builder.Logging);
        var refusals = new LogThrottle(10, TimeSpan.FromSeconds(10));
        ILogger? logger = null;
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxConcurrentConnections = 64;
            k.Listen(listen, l => l.UseClusterTls(credentials, trust, WitnessAccess.Readers, reason =>
            {
                if (logger is not null && refusals.TryEnter(out var suppressed))
                {
                    LogRefusedConnection(logger, reason, suppressed);
                }
            }));
        });
        builder.Services.AddSingleton(new WitnessBook(settings.Lease, PhysicalFileSystem.Instance, Path.Combine(directory, "votes.json")));
        if (settings.ParentPid is { } parent)
        {
            builder.Services.AddHostedService(sp => new ParentWatch(parent, sp.GetRequiredService<IHostApplicationLifetime>(), sp.GetRequiredService<ILogger<ParentWatch>>()));
        }

        await using var app = builder.Build();
        logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Replicator.Witness");
        var api = app.MapGroup("/api/v1");
        api.MapGet("/votes", (WitnessBook book) => book.Votes.Select(v => new VoteInfo(v.Key, v.Value.Holder!, v.Value.Generation.ToString("X16", CultureInfo.InvariantCulture), v.Value.ExpiresAt)).ToList());
        api.MapPost("/votes/{volume:guid}", async (Guid volume, VoteRequest? request, HttpContext http, WitnessBook book) =>
        {
            var bitmap = 0UL;
            if (!TryHex(request?.Current, out var current) || !TryHex(request?.WritingAs, out var writingAs)
                || (request!.Bitmap is not null && !TryHex(request.Bitmap, out bitmap)))
            {
                return Results.Problem(statusCode: 400, title: "Bad request", detail: "A vote request names the node's current, writingAs and (optional) bitmap generation ids (16 hex digits).");
            }

            var (node, refusal) = WitnessAccess.VoterOf(await CallerAsync(http, trust), request.Node, "claim or renew");
            if (node is null)
            {
                LogRefusedVote(logger, "claim", volume, refusal!);
                return Results.Problem(statusCode: StatusCodes.Status403Forbidden, title: "Forbidden", detail: refusal);
            }

            var answer = book.Request(volume, node, current, bitmap, writingAs, DateTimeOffset.UtcNow);
            if (answer.Reason != "renewed")
            {
                LogVote(logger, volume, answer.Granted ? "granted" : "refused", node, answer.Reason);
            }

            return answer.Granted ? Results.Ok(answer) : Results.Json(answer, statusCode: StatusCodes.Status409Conflict);
        });
        api.MapPost("/votes/{volume:guid}/release", async (Guid volume, ReleaseRequest? request, HttpContext http, WitnessBook book) =>
        {
            if (!TryHex(request?.Generation, out var generation))
            {
                return Results.Problem(statusCode: 400, title: "Bad request", detail: "A release names the generation id the node's pair is in sync at (16 hex digits).");
            }

            var (node, refusal) = WitnessAccess.VoterOf(await CallerAsync(http, trust), request!.Node, "release");
            if (node is null)
            {
                LogRefusedVote(logger, "release", volume, refusal!);
                return Results.Problem(statusCode: StatusCodes.Status403Forbidden, title: "Forbidden", detail: refusal);
            }

            if (book.Release(volume, node, generation, DateTimeOffset.UtcNow))
            {
                LogReleased(logger, node, volume);
            }

            return Results.NoContent();
        });

        await app.StartAsync(ct);
        await File.WriteAllTextAsync(Path.Combine(directory, "witness.pid"), Environment.ProcessId.ToString(CultureInfo.InvariantCulture), ct);
        LogReady(logger, settings.Listen, own.Identity.ToString(), settings.Lease.TotalSeconds, directory);
        await app.WaitForShutdownAsync(ct);
        return Cli.ExitCodes.Ok;
    }

    /// <summary>The verdict on the request's client certificate, checked again now (a revocation since the handshake counts).</summary>
    private static async Task<TrustVerdict> CallerAsync(HttpContext http, ClusterTrust trust) =>
        trust.Check(await http.Connection.GetClientCertificateAsync(), new IdentityRequirement(WitnessAccess.Readers, TlsSide.Client));

    private static bool TryHex(string? text, out ulong value) =>
        ulong.TryParse(text, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);

    [LoggerMessage(Level = LogLevel.Information, Message = "Witness ready on {Listen} as the {Identity} (mutual TLS; lease {Lease} s), votes in {Directory}")]
    private static partial void LogReady(ILogger logger, string listen, string identity, double lease, string directory);

    [LoggerMessage(Level = LogLevel.Information, Message = "Vote for volume {Volume} {Verdict} to node {Node}: {Reason}")]
    private static partial void LogVote(ILogger logger, Guid volume, string verdict, string node, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Node {Node} released the vote for volume {Volume}: its pair is in sync")]
    private static partial void LogReleased(ILogger logger, string node, Guid volume);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Refused a vote {Action} for volume {Volume}: {Reason}")]
    private static partial void LogRefusedVote(ILogger logger, string action, Guid volume, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Refused a connection: {Reason} ({Suppressed} more refusals not logged since the last)")]
    private static partial void LogRefusedConnection(ILogger logger, string reason, int suppressed);
}

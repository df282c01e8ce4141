using System.Globalization;
using System.Net;
using Replicator.Core.Storage;
using Replicator.Node.Admin;
using Replicator.Node.Configuration;
using Replicator.Node.Hosting;
using Replicator.Node.Witness;

namespace Replicator.Node.Roles;

internal sealed record WitnessSettings(string Directory, string Listen, string TokenFile, TimeSpan Lease, int? ParentPid);

/// <summary>
/// <c>replicator witness</c>: the third vote. Keeps, per volume, which node may write it without
/// its peer (see <see cref="WitnessBook"/>), in <c>DIR/votes.json</c>, behind the cluster's bearer
/// token on a loopback HTTP port.
/// </summary>
internal static class WitnessRole
{
    public static async Task<int> RunAsync(WitnessSettings settings, CancellationToken ct)
    {
        var directory = Path.GetFullPath(settings.Directory);
        PhysicalFileSystem.Instance.CreateDirectory(directory);
        var token = AdminToken.LoadOrCreate(Path.GetFullPath(settings.TokenFile, directory));
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ContentRootPath = AppContext.BaseDirectory,
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
        });
        NodeLogging.Configure(builder.Logging);
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPEndPoint.Parse(settings.Listen)));
        builder.Services.AddSingleton(new WitnessBook(settings.Lease, PhysicalFileSystem.Instance, Path.Combine(directory, "votes.json")));
        if (settings.ParentPid is { } parent)
        {
            builder.Services.AddHostedService(sp => new ParentWatch(parent, sp.GetRequiredService<IHostApplicationLifetime>(), sp.GetRequiredService<ILogger<ParentWatch>>()));
        }

        await using var app = builder.Build();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Replicator.Witness");
        app.UseMiddleware<BearerTokenAuth>(token);
        var api = app.MapGroup("/api/v1");
        api.MapGet("/votes", (WitnessBook book) => book.Votes.Select(v => new VoteInfo(v.Key, v.Value.Holder!, v.Value.Generation.ToString("X16", CultureInfo.InvariantCulture), v.Value.ExpiresAt)).ToList());
        api.MapPost("/votes/{volume:guid}", (Guid volume, VoteRequest? request, WitnessBook book) =>
        {
            var bitmap = 0UL;
            if (request?.Node is not { Length: > 0 } node || !TryHex(request.Current, out var current) || !TryHex(request.WritingAs, out var writingAs)
                || (request.Bitmap is not null && !TryHex(request.Bitmap, out bitmap)))
            {
                return Results.Problem(statusCode: 400, title: "Bad request", detail: "A vote request names the node and its current, writingAs and (optional) bitmap generation ids (16 hex digits).");
            }

            var answer = book.Request(volume, node, current, bitmap, writingAs, DateTimeOffset.UtcNow);
            if (answer.Reason != "renewed")
            {
                logger.LogInformation("Vote for volume {Volume} {Verdict} to node {Node}: {Reason}", volume, answer.Granted ? "granted" : "refused", node, answer.Reason);
            }

            return answer.Granted ? Results.Ok(answer) : Results.Json(answer, statusCode: StatusCodes.Status409Conflict);
        });
        api.MapPost("/votes/{volume:guid}/release", (Guid volume, ReleaseRequest? request, WitnessBook book) =>
        {
            if (request?.Node is not { Length: > 0 } node || !TryHex(request.Generation, out var generation))
            {
                return Results.Problem(statusCode: 400, title: "Bad request", detail: "A release names the node and the generation id its pair is in sync at (16 hex digits).");
            }

            if (book.Release(volume, node, generation, DateTimeOffset.UtcNow))
            {
                logger.LogInformation("Node {Node} released the vote for volume {Volume}: its pair is in sync", node, volume);
            }

            return Results.NoContent();
        });

        await app.StartAsync(ct);
        await File.WriteAllTextAsync(Path.Combine(directory, "witness.pid"), Environment.ProcessId.ToString(CultureInfo.InvariantCulture), ct);
        logger.LogInformation("Witness ready on {Listen} (lease {Lease} s), votes in {Directory}", settings.Listen, settings.Lease.TotalSeconds, directory);
        await app.WaitForShutdownAsync(ct);
        return Cli.ExitCodes.Ok;
    }

    private static bool TryHex(string? text, out ulong value) =>
        ulong.TryParse(text, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
}

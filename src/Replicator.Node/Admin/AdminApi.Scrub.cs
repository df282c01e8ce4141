using Replicator.Core.Replication;
using Replicator.Node.Replication;

namespace Replicator.Node.Admin;

/// <summary>A volume's scrub and block integrity on this node: <c>/volumes/{name}/scrub</c>.</summary>
internal static partial class AdminApi
{
    private static void MapScrub(RouteGroupBuilder api)
    {
        api.MapGet("/volumes/{name}/scrub", (string name, ReplicationManager volumes) => WithScrub(volumes, name, _ => { }));
        api.MapPost("/volumes/{name}/scrub/start", (string name, ReplicationManager volumes) => WithScrub(volumes, name, scrub => scrub.RequestStart()));
        api.MapPost("/volumes/{name}/scrub/pause", (string name, ReplicationManager volumes) => WithScrub(volumes, name, scrub => scrub.Pause()));
        api.MapPost("/volumes/{name}/scrub/resume", (string name, ReplicationManager volumes) => WithScrub(volumes, name, scrub => scrub.Resume()));
        api.MapPut("/volumes/{name}/scrub/settings", (string name, ScrubSettingsRequest? request, ReplicationManager volumes) =>
        {
            if (request?.RateLimit is { } text && !Core.ByteSize.TryParse(text, out _))
            {
                return BadRequest($"'{text}' is not a rate; write bytes per second like 64M, or 0 for no cap.");
            }

            return WithScrub(volumes, name, scrub =>
            {
                if (request?.RateLimit is { } rate && Core.ByteSize.TryParse(rate, out var bytes))
                {
                    scrub.RateLimit = bytes;
                }
            });
        });
    }

    /// <summary>Acts on a volume's scrub and answers with where it stands; a node without block checksums has none to act on.</summary>
    private static IResult WithScrub(ReplicationManager volumes, string name, Action<ScrubEngine> action) =>
        WithVolume(volumes, name, volume =>
        {
            if (!volume.Local.BlockChecksums)
            {
                return Conflict($"This node keeps no block checksums (blockChecksums is false in its node.json, a measurement option): there is nothing to scrub against.");
            }

            action(volume.Scrub);
            return Results.Ok(ToScrubInfo(volume.Scrub));
        });

    internal static ScrubInfo ToScrubInfo(ScrubEngine scrub)
    {
        var p = scrub.Progress;
        return new ScrubInfo(Kebab(p.State.ToString()), p.DoneBytes, p.TotalBytes, p.BytesPerSecond, p.Eta?.TotalSeconds,
            ToInfo(p.Pass), ToInfo(p.LastPass), p.PassStarted, p.LastCompleted, p.NextDue)
        {
            RateLimit = scrub.RateLimit,
        };
    }

    internal static IntegrityInfo ToIntegrityInfo(IntegritySnapshot s) => new(s.Detected, s.Healed, s.Unrecoverable, s.Unverified, s.Settled,
        s.Last is { } last ? new IntegrityEventInfo(last.At, last.Offset, last.Replica, Kebab(last.Path.ToString()), last.Outcome) : null);

    private static ScrubFindingsInfo ToInfo(ScrubFindings f) => new(f.ScannedBytes, f.Detected, f.Healed, f.Unrecoverable);
}

/// <summary>Scrub steering for a volume on one node: a cap in bytes per second (0: none).</summary>
internal sealed record ScrubSettingsRequest(string? RateLimit);

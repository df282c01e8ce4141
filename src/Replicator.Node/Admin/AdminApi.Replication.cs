using Replicator.Core.Replication;
using Replicator.Node.Replication;

namespace Replicator.Node.Admin;

/// <summary>Verify and resync resources of a volume.</summary>
internal static partial class AdminApi
{
    private static void MapReplication(RouteGroupBuilder api)
    {
        api.MapPost("/volumes/{name}/verify", (string name, int? regionSize, ReplicationManager volumes) =>
            WithVolume(volumes, name, volume =>
            {
                try
                {
                    var verifier = volumes.StartVerify(volume, regionSize ?? VolumeVerifier.DefaultRegionSize);
                    return Results.Accepted($"{Prefix}/volumes/{name}/verify", ToVerifyInfo(verifier.Report, volumes.LocalName, volume.PeerName));
                }
                catch (ArgumentOutOfRangeException e)
                {
                    return BadRequest(e.Message);
                }
            }));
        api.MapGet("/volumes/{name}/verify", (string name, ReplicationManager volumes) =>
            WithVolume(volumes, name, volume => volumes.LatestVerify(volume) is { } verifier
                ? Results.Ok(ToVerifyInfo(verifier.Report, volumes.LocalName, volume.PeerName))
                : Results.Problem(statusCode: StatusCodes.Status404NotFound, title: "No verify yet", detail: $"No verify of '{name}' has run since this node started; start one with POST.")));
        api.MapGet("/volumes/{name}/resync", (string name, ReplicationManager volumes) =>
            WithVolume(volumes, name, volume => Results.Ok(ToReplicaInfo(volume, volumes))));
        api.MapPost("/volumes/{name}/resync/pause", (string name, ReplicationManager volumes) =>
            WithVolume(volumes, name, volume =>
            {
                volume.Resync.Pause();
                return Results.Ok(ToReplicaInfo(volume, volumes));
            }));
        api.MapPost("/volumes/{name}/resync/resume", (string name, ReplicationManager volumes) =>
            WithVolume(volumes, name, volume =>
            {
                volume.Resync.Resume();
                return Results.Ok(ToReplicaInfo(volume, volumes));
            }));
        api.MapPost("/volumes/{name}/resync/checksum", (string name, ReplicationManager volumes) =>
            WithVolume(volumes, name, volume =>
            {
                try
                {
                    volume.StartChecksumResync();
                    return Results.Accepted($"{Prefix}/volumes/{name}/resync", ToReplicaInfo(volume, volumes));
                }
                catch (InvalidOperationException e)
                {
                    return Conflict(e.Message);
                }
            }));
        api.MapPut("/volumes/{name}/resync/settings", (string name, ResyncSettingsRequest? request, ReplicationManager volumes) =>
            WithVolume(volumes, name, volume =>
            {
                if (request?.RateLimit is { } text)
                {
                    if (!Core.ByteSize.TryParse(text, out var rate))
                    {
                        return BadRequest($"'{text}' is not a rate; write bytes per second like 50M, or 0 for no cap.");
                    }

                    volume.Resync.RateLimit = rate;
                }

                if (request?.Adaptive is { } adaptive)
                {
                    volume.Resync.Adaptive = adaptive;
                }

                if (request?.Checksum is { } checksum)
                {
                    volume.Resync.ChecksumFirst = checksum;
                }

                return Results.Ok(ToReplicaInfo(volume, volumes));
            }));
        api.MapPost("/volumes/{name}/attach-disk", (string name, ReplicationManager volumes) =>
            WithVolume(volumes, name, volume =>
            {
                try
                {
                    volume.AttachDisk();
                    return Results.Ok(ToReplicaInfo(volume, volumes));
                }
                catch (PairingRejectedException e)
                {
                    return Conflict(e.Message);
                }
                catch (Core.Devices.BlockDeviceException e)
                {
                    return Results.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "The disk still fails",
                        detail: $"Volume '{name}': the disk could not be attached again ({e.Message}); it stays detached.");
                }
            }));
        api.MapPost("/volumes/{name}/resync/resolve", async (string name, ResolveRequest? request, ReplicationManager volumes, CancellationToken ct) =>
        {
            if (volumes.Find(name) is not { } volume)
            {
                return NoSuchVolume(name);
            }

            if (request?.Discard is not { Length: > 0 } discard)
            {
                return BadRequest("Name the node whose changes are discarded, e.g. {\"discard\": \"b\"}. Its replica then resyncs from the other.");
            }

            try
            {
                await volumes.ResolveSplitBrainAsync(volume, discard, ct);
                return Results.Ok(ToReplicaInfo(volume, volumes));
            }
            catch (ArgumentException e)
            {
                return BadRequest(e.Message);
            }
            catch (InvalidOperationException e)
            {
                return Conflict(e.Message);
            }
        });
    }

    private static IResult WithVolume(ReplicationManager volumes, string name, Func<ReplicatedVolume, IResult> action) =>
        volumes.Find(name) is { } volume ? action(volume) : NoSuchVolume(name);

    internal static VerifyInfo ToVerifyInfo(VerifyReport report, string localName, string peerName) => new(
        Kebab(report.State.ToString()), report.TotalBytes, report.CheckedBytes, report.RegionSize, report.DifferingRegions,
        report.Differing.Select(d => new RangeInfo(d.Offset, d.Length)
        {
            DamagedOn = d.Damaged switch
            {
                DamagedReplica.Local => [localName],
                DamagedReplica.Peer => [peerName],
                DamagedReplica.Both => [localName, peerName],
                _ => [],
            },
        }).ToList(), report.Started, report.Elapsed.TotalSeconds, report.Error)
    {
        UnrecoverableRegions = report.Differing.Where(d => d.Damaged == DamagedReplica.Both).Sum(d => d.Length / report.RegionSize),
    };
}

internal sealed record ResolveRequest(string? Discard);

/// <summary>Resync steering for a volume on the node that sends it: a fixed cap in bytes per second (0: none) and the adaptive controller.</summary>
internal sealed record ResyncSettingsRequest(string? RateLimit, bool? Adaptive)
{
    /// <summary>Compare region checksums before sending, in every resync from this node.</summary>
    public bool? Checksum { get; init; }
}

internal sealed record RangeInfo(long Offset, long Length)
{
    /// <summary>
    /// The nodes whose copy of the range fails its checksums: one (the other holds the good copy, which a checksum
    /// resync takes), both (no good copy: the range is unrecoverable and reads as an I/O error), or none (both copies
    /// are intact and differ: a real divergence, repaired from the side the generation rules choose).
    /// </summary>
    public string[] DamagedOn { get; init; } = [];
}

internal sealed record VerifyInfo(string State, long TotalBytes, long CheckedBytes, int RegionSize, long DifferingRegions, List<RangeInfo> Differing,
    DateTimeOffset Started, double ElapsedSeconds, string? Error)
{
    /// <summary>Regions whose copies fail their checksums on both nodes.</summary>
    public long UnrecoverableRegions { get; init; }
}

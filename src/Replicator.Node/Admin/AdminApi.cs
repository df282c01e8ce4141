using Replicator.Core;
using Replicator.Core.Pool;
using Replicator.Core.Replication;
using Replicator.Core.Volumes;
using Replicator.Node.Replication;
using Replicator.Node.Roles;
using Replicator.Node.Storage;

namespace Replicator.Node.Admin;

/// <summary>The node's admin HTTP API, version 1: <c>/api/v1/…</c>. Errors are RFC 7807 problem details.</summary>
internal static partial class AdminApi
{
    public const string Prefix = "/api/v1";

    public static void MapAdminApi(this WebApplication app)
    {
        var api = app.MapGroup(Prefix);
        api.MapGet("/node", (NodeIdentity identity, ReplicationManager volumes) => Describe(identity, volumes));
        api.MapGet("/pool", (NodeStorage storage) => ToInfo(storage.Pool));
        api.MapGet("/cluster", (HttpContext http, ClusterViewBuilder view, CancellationToken ct) =>
            view.BuildAsync($"{http.Request.Scheme}://{http.Request.Host}", ct));
        api.MapGet("/volumes", (ReplicationManager volumes, VolumeExports exports) => volumes.Volumes.Select(v => ToInfo(v, volumes, exports)).ToList());
        api.MapGet("/volumes/{name}", (string name, ReplicationManager volumes, VolumeExports exports) =>
            volumes.Find(name) is { } v ? Results.Ok(ToInfo(v, volumes, exports)) : NoSuchVolume(name));
        api.MapPost("/volumes", CreateVolumeAsync);
        api.MapPost("/volumes/{name}/resize", ResizeVolumeAsync);
        api.MapDelete("/volumes/{name}", DeleteVolumeAsync);
        api.MapPut("/volumes/{name}/preferred", SetPreferredAsync);
        MapReplication(api);
        MapScrub(api);
    }

    internal static NodeInfo Describe(NodeIdentity identity, ReplicationManager volumes)
    {
        var info = identity.Info;
        if (volumes.PeerName is not { } peer)
        {
            return info;
        }

        var state = volumes.Link;
        var security = volumes.Security;
        var protection = state is null ? null : security.Link;
        return info with
        {
            Peer = new PeerInfo(peer, state is not null, state?.Address, state?.Since, volumes.Connects)
            {
                ReadLeaseHeld = state?.ReadLease.IsHeld == true,
                ReadLeaseMs = state?.ReadLeaseAsked.TotalMilliseconds,
                Encrypted = protection?.Encrypted,
                PeerCertificateSerial = protection?.PeerCertificateSerial,
                RefusedConnections = security.RefusedConnections,
                RefusedRequests = security.RefusedRequests,
                LastRefusedConnection = security.LastRefusedConnection is { } connection ? $"{connection.At:u}: {connection.Reason}" : null,
                LastRefusedRequest = security.LastRefusedRequest is { } request ? $"{request.At:u}: {request.Reason}" : null,
            },
            Quorum = volumes.Quorum.Describe(),
        };
    }

    private static async Task<IResult> CreateVolumeAsync(CreateVolumeRequest? request, ReplicationManager volumes, VolumeExports exports, CancellationToken ct)
    {
        if (request?.Name is null || request.Size is null)
        {
            return BadRequest("A volume needs a name and a size, e.g. {\"name\": \"vol1\", \"size\": \"10G\"}.");
        }

        if (!ByteSize.TryParse(request.Size, out var size))
        {
            return BadRequest($"'{request.Size}' is not a size; write it like 10G, 512M or a number of bytes.");
        }

        try
        {
            var volume = await volumes.CreateVolumeAsync(request.Name, size, request.PreferredNode, ct);
            return Results.Created($"{Prefix}/volumes/{volume.Name}", ToInfo(volume, volumes, exports));
        }
        catch (VolumeExistsException e)
        {
            return Conflict(e.Message);
        }
        catch (ArgumentException e)
        {
            return BadRequest(e.Message);
        }
    }

    private static async Task<IResult> ResizeVolumeAsync(string name, ResizeVolumeRequest? request, ReplicationManager volumes, VolumeExports exports, CancellationToken ct)
    {
        if (volumes.Find(name) is not { } volume)
        {
            return NoSuchVolume(name);
        }

        if (request?.Size is null || !ByteSize.TryParse(request.Size, out var size))
        {
            return BadRequest("Give the new size, e.g. {\"size\": \"20G\"}; volumes can grow but not shrink.");
        }

        try
        {
            await volumes.ResizeVolumeAsync(volume, size, ct);
            return Results.Ok(ToInfo(volume, volumes, exports));
        }
        catch (ArgumentException e)
        {
            return BadRequest(e.Message);
        }
    }

    private static async Task<IResult> DeleteVolumeAsync(string name, bool? confirm, bool? force, ReplicationManager volumes, CancellationToken ct)
    {
        if (volumes.Find(name) is not { } volume)
        {
            return NoSuchVolume(name);
        }

        if (confirm != true)
        {
            return BadRequest($"Deleting volume '{name}' destroys its data on both nodes; repeat the request with ?confirm=true.");
        }

        try
        {
            await volumes.DeleteVolumeAsync(volume, force == true, volumes.AttachedClients, ct);
            return Results.NoContent();
        }
        catch (InvalidOperationException e)
        {
            return Conflict(e.Message);
        }
    }

    private static async Task<IResult> SetPreferredAsync(string name, PreferredNodeRequest? request, ReplicationManager volumes, VolumeExports exports, CancellationToken ct)
    {
        if (volumes.Find(name) is not { } volume)
        {
            return NoSuchVolume(name);
        }

        if (request?.Node is not { Length: > 0 } node)
        {
            return BadRequest("Name the node the volume should prefer, e.g. {\"node\": \"b\"}.");
        }

        try
        {
            await volumes.SetPreferredNodeAsync(volume, node, ct);
            return Results.Ok(ToInfo(volume, volumes, exports));
        }
        catch (ArgumentException e)
        {
            return BadRequest(e.Message);
        }
    }

    internal static PoolInfo ToInfo(StoragePool pool)
    {
        var usage = pool.Usage;
        return new PoolInfo(usage.Capacity, usage.Virtual, usage.Allocated, usage.Free, usage.Volumes, pool.ExtentSize) { BlockChecksums = pool.BlockChecksums };
    }

    /// <summary>A volume of a node that is not running (the CLI works on its directory): no replication state to report.</summary>
    internal static VolumeInfo ToInfo(ThinVolume volume) => new(volume.Name, volume.Id, volume.Size, volume.AllocatedBytes, volume.UnitSize, 0);

    internal static VolumeInfo ToInfo(ReplicatedVolume volume, ReplicationManager volumes, VolumeExports exports) =>
        new(volume.Name, volume.Id, volume.Size, volume.Local.AllocatedBytes, volume.Local.UnitSize, exports.AttachedCount(volume.Id))
        {
            PreferredNode = volumes.PreferredNode(volume),
            Io = exports.Rates(volume.Name) ?? new Metrics.IoRates(0, 0, 0, 0),
            Replication = volume.HasPeer ? ToReplicaInfo(volume, volumes) : null,
            Integrity = volume.Local.BlockChecksums ? ToIntegrityInfo(volume.Integrity.Snapshot) : null,
            Scrub = volume.Local.BlockChecksums ? ToScrubInfo(volume.Scrub) : null,
        };

    private static ReplicaInfo ToReplicaInfo(ReplicatedVolume volume, ReplicationManager volumes)
    {
        var session = volume.Session;
        var status = volume.Replica.Status;
        var problem = ReplicationManager.PairingProblem(volume);
        var progress = volume.Resync.Progress;
        var connection = session is not null ? "connected" : problem is not null ? "unpaired" : "disconnected";
        return new ReplicaInfo(
            connection,
            Kebab(status.Disk.ToString()),
            Kebab((session?.Role ?? SyncRole.None).ToString()),
            session is null ? null : session.LocalIsOwner ? volumes.LocalName : session.PeerName,
            volume.Replica.OutOfSyncBytes,
            new GenerationInfo(Hex(status.Ids.Current), Hex(status.Ids.Bitmap), [Hex(status.Ids.History0), Hex(status.Ids.History1)]),
            new ResyncInfo(Kebab(progress.State.ToString()), progress.TotalBytes, progress.DoneBytes, progress.RemainingBytes,
                progress.BytesPerSecond, progress.Eta?.TotalSeconds, progress.SentBytes, progress.Completed)
            {
                RateLimit = volume.Resync.RateLimit,
                Adaptive = volume.Resync.Adaptive,
                Checksum = volume.Resync.ChecksumFirst,
                CoveredBytes = volume.Resync.CoveredBytes,
                ComparedBytes = volume.Resync.ComparedBytes,
            },
            problem)
        {
            Detached = DiskAlerts.Detached(volume),
            Alert = DiskAlerts.Describe(volume, volumes.LocalName),
        };
    }

    private static string Hex(ulong value) => value.ToString("X16", System.Globalization.CultureInfo.InvariantCulture);

    private static string Kebab(string pascal) => KebabPattern().Replace(pascal, "$1-$2").ToLowerInvariant();

    [System.Text.RegularExpressions.GeneratedRegex("([a-z])([A-Z])")]
    private static partial System.Text.RegularExpressions.Regex KebabPattern();

    private static IResult NoSuchVolume(string name) =>
        Results.Problem(statusCode: StatusCodes.Status404NotFound, title: "No such volume", detail: $"There is no volume named '{name}' on this node.");

    private static IResult BadRequest(string detail) =>
        Results.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Bad request", detail: detail);

    private static IResult Conflict(string detail) =>
        Results.Problem(statusCode: StatusCodes.Status409Conflict, title: "Conflict", detail: detail);
}

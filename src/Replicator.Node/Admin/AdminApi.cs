using Replicator.Core;
using Replicator.Core.Pool;
using Replicator.Core.Volumes;
using Replicator.Node.Roles;
using Replicator.Node.Storage;

namespace Replicator.Node.Admin;

/// <summary>The node's admin HTTP API, version 1: <c>/api/v1/…</c>. Errors are RFC 7807 problem details.</summary>
internal static class AdminApi
{
    public const string Prefix = "/api/v1";

    public static void MapAdminApi(this WebApplication app)
    {
        var api = app.MapGroup(Prefix);
        api.MapGet("/node", (NodeIdentity identity) => identity.Info);
        api.MapGet("/pool", (NodeStorage storage) => ToInfo(storage.Pool));
        api.MapGet("/volumes", (NodeStorage storage) =>
            storage.Pool.Volumes.OrderBy(v => v.Name, StringComparer.Ordinal).Select(v => ToInfo(v, storage.Exports)).ToList());
        api.MapGet("/volumes/{name}", (string name, NodeStorage storage) =>
            storage.Pool.Find(name) is { } v ? Results.Ok(ToInfo(v, storage.Exports)) : NoSuchVolume(name));
        api.MapPost("/volumes", CreateVolume);
        api.MapPost("/volumes/{name}/resize", ResizeVolume);
        api.MapDelete("/volumes/{name}", DeleteVolume);
    }

    private static IResult CreateVolume(CreateVolumeRequest? request, NodeStorage storage)
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
            var volume = storage.Pool.CreateVolume(request.Name, size);
            return Results.Created($"{Prefix}/volumes/{volume.Name}", ToInfo(volume, storage.Exports));
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

    private static IResult ResizeVolume(string name, ResizeVolumeRequest? request, NodeStorage storage)
    {
        if (storage.Pool.Find(name) is not { } volume)
        {
            return NoSuchVolume(name);
        }

        if (request?.Size is null || !ByteSize.TryParse(request.Size, out var size))
        {
            return BadRequest("Give the new size, e.g. {\"size\": \"20G\"}; volumes can grow but not shrink.");
        }

        try
        {
            storage.Pool.ResizeVolume(volume, size);
            return Results.Ok(ToInfo(volume, storage.Exports));
        }
        catch (ArgumentException e)
        {
            return BadRequest(e.Message);
        }
    }

    private static IResult DeleteVolume(string name, bool? confirm, NodeStorage storage)
    {
        if (storage.Pool.Find(name) is not { } volume)
        {
            return NoSuchVolume(name);
        }

        if (confirm != true)
        {
            return BadRequest($"Deleting volume '{name}' destroys its data; repeat the request with ?confirm=true.");
        }

        try
        {
            storage.Exports.DeleteUnlessAttached(volume);
            return Results.NoContent();
        }
        catch (VolumeInUseException e)
        {
            return Conflict(e.Message);
        }
    }

    internal static PoolInfo ToInfo(StoragePool pool)
    {
        var usage = pool.Usage;
        return new PoolInfo(usage.Capacity, usage.Virtual, usage.Allocated, usage.Free, usage.Volumes, pool.ExtentSize);
    }

    internal static VolumeInfo ToInfo(ThinVolume volume, VolumeExports exports) =>
        new(volume.Name, volume.Id, volume.Size, volume.AllocatedBytes, volume.UnitSize, exports.AttachedCount(volume.Id));

    private static IResult NoSuchVolume(string name) =>
        Results.Problem(statusCode: StatusCodes.Status404NotFound, title: "No such volume", detail: $"There is no volume named '{name}' on this node.");

    private static IResult BadRequest(string detail) =>
        Results.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Bad request", detail: detail);

    private static IResult Conflict(string detail) =>
        Results.Problem(statusCode: StatusCodes.Status409Conflict, title: "Conflict", detail: detail);
}

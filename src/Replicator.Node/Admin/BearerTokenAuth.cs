using Replicator.Node.Configuration;

namespace Replicator.Node.Admin;

/// <summary>
/// Every admin request carries <c>Authorization: Bearer &lt;token&gt;</c>; anything else gets 401 and a log line.
/// Only the status page's static assets are answered before this check (<see cref="StatusPage"/>): they hold no data.
/// </summary>
internal sealed partial class BearerTokenAuth(RequestDelegate next, string token, ILogger<BearerTokenAuth> logger)
{
    public async Task InvokeAsync(HttpContext context)
    {
        var header = context.Request.Headers.Authorization.ToString();
        var presented = header.StartsWith("Bearer ", StringComparison.Ordinal) ? header["Bearer ".Length..].Trim() : null;
        if (!AdminToken.Matches(token, presented))
        {
            LogRefused(context.Request.Method, context.Request.Path, context.Connection.RemoteIpAddress?.ToString() ?? "?",
                presented is null ? "no bearer token" : "wrong token");
            context.Response.Headers.WWWAuthenticate = "Bearer";
            await Results.Problem(
                statusCode: StatusCodes.Status401Unauthorized,
                title: "Unauthorized",
                detail: "This admin API needs 'Authorization: Bearer <token>'. The token is in the node's admin.token file (or the cluster's, named in cluster.json).")
                .ExecuteAsync(context);
            return;
        }

        await next(context);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Refused admin request {Method} {Path} from {Remote}: {Reason}")]
    private partial void LogRefused(string method, string path, string remote, string reason);
}

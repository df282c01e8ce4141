using System.Collections.Frozen;
using System.Security.Cryptography;
using Microsoft.AspNetCore.StaticFiles;

namespace Replicator.Node.Admin;

/// <summary>
/// The status page at <c>GET /</c>: one HTML page, its stylesheet, script and icon, kept in
/// <c>wwwroot/</c> as written (no build step) and embedded in the assembly, so every copy of the
/// binary serves them. They are answered before the bearer-token check because they hold no data:
/// the page reads everything it shows from the admin API, with the token it is handed in the URL
/// fragment (<c>/#token=…</c>, which a browser never sends to the server).
/// </summary>
internal sealed class StatusPage(RequestDelegate next)
{
    private const string ResourcePrefix = "wwwroot/";

    /// <summary>Scripts, styles and images from this origin only; the data from the admin API on the same origin.</summary>
    private const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    private static readonly FrozenDictionary<string, Asset> s_assets = Load();

    /// <summary>The request paths served, e.g. <c>/</c> and <c>/ui/status.js</c>.</summary>
    public static IEnumerable<string> Paths => s_assets.Keys;

    public Task InvokeAsync(HttpContext context)
    {
        var request = context.Request;
        if (!(HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method)) || !s_assets.TryGetValue(request.Path.Value ?? "", out var asset))
        {
            return next(context);
        }

        var response = context.Response;
        response.Headers.ContentType = asset.ContentType;
        response.Headers.ETag = asset.ETag;
        response.Headers.CacheControl = "no-cache";
        response.Headers.ContentSecurityPolicy = ContentSecurityPolicy;
        response.Headers.XContentTypeOptions = "nosniff";
        response.Headers["Referrer-Policy"] = "no-referrer";
        if (request.Headers.IfNoneMatch.Contains(asset.ETag))
        {
            response.StatusCode = StatusCodes.Status304NotModified;
            return Task.CompletedTask;
        }

        response.ContentLength = asset.Content.Length;
        return HttpMethods.IsHead(request.Method) ? Task.CompletedTask : response.Body.WriteAsync(asset.Content, context.RequestAborted).AsTask();
    }

    private static FrozenDictionary<string, Asset> Load()
    {
        var assembly = typeof(StatusPage).Assembly;
        var types = new FileExtensionContentTypeProvider();
        var assets = new Dictionary<string, Asset>(StringComparer.Ordinal);
        foreach (var name in assembly.GetManifestResourceNames().Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal)))
        {
            using var stream = assembly.GetManifestResourceStream(name)!;
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            var content = buffer.ToArray();
            var file = name[ResourcePrefix.Length..];
            var type = types.TryGetContentType(file, out var known) ? known : "application/octet-stream";
            var etag = $"\"{Convert.ToHexStringLower(SHA256.HashData(content).AsSpan(0, 8))}\"";
            assets[file == "index.html" ? "/" : "/" + file] = new Asset(type.StartsWith("text/", StringComparison.Ordinal) ? type + "; charset=utf-8" : type, etag, content);
        }

        return assets.ToFrozenDictionary(StringComparer.Ordinal);
    }

    private sealed record Asset(string ContentType, string ETag, byte[] Content);
}

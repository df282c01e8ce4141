using System.CommandLine;
using System.Text.Json;
using Replicator.Node.Configuration;

namespace Replicator.Node.Cli;

/// <summary>Options several commands share, defined once so they are spelled and described the same everywhere.</summary>
internal static class CommonOptions
{
    public static Option<DirectoryInfo> Dir(bool required, string description = "The node's data directory") =>
        new("--dir", "-d") { Description = description, Required = required };

    public static Option<bool> Json() => new("--json") { Description = "Print machine-readable JSON instead of a table" };

    public static Option<string?> Admin() => new("--admin") { Description = "Admin API URL of a running node, e.g. http://127.0.0.1:7100" };

    /// <summary>The --admin URL, or a usage error that says what is wrong with it.</summary>
    public static Uri? ParseAdmin(string? text) =>
        text is null ? null
        : Uri.TryCreate(text, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps) ? uri
        : throw new CliException(ExitCodes.Usage, $"--admin '{text}' is not an http:// URL such as http://127.0.0.1:7100");

    public static Option<FileInfo?> TokenFile() => new("--token-file") { Description = "File holding the admin API bearer token" };

    public static void PrintJson<T>(T value) => Console.WriteLine(JsonSerializer.Serialize(value, NodeConfig.JsonOptions));
}

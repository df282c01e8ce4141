using System.Security.Cryptography;
using System.Text;
using Replicator.Core.Storage;

namespace Replicator.Node.Configuration;

/// <summary>
/// The bearer token of a node's admin API: 32 random bytes in hex, in a file only its owner can
/// read (mode 0600). Created on first start; the CLI and <c>cluster up</c> read it from there.
/// </summary>
internal static class AdminToken
{
    public const string FileName = "admin.token";

    public static string PathIn(string directory) => Path.Combine(directory, FileName);

    public static string LoadOrCreate(string path)
    {
        if (File.Exists(path))
        {
            return Read(path);
        }

        var token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        PhysicalFileSystem.Instance.WriteAtomically(path, Encoding.ASCII.GetBytes(token + "\n"));
        return token;
    }

    public static string Read(string path)
    {
        var token = File.ReadAllText(path).Trim();
        if (token.Length < 16)
        {
            throw new ConfigurationException($"{path} does not hold an admin token");
        }

        return token;
    }

    /// <summary>Constant-time comparison of a presented token with the expected one.</summary>
    public static bool Matches(string expected, string? presented) =>
        presented is not null
        && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(expected), Encoding.UTF8.GetBytes(presented));
}

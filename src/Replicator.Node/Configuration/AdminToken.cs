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

    /// <summary>Reads the token; refused, as ssh refuses such a private key, when other users may read or change the file.</summary>
    /// <exception cref="ConfigurationException">The file is open to others, or holds no token.</exception>
    public static string Read(string path)
    {
        const UnixFileMode open = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite;
        if (File.Exists(path) && (File.GetUnixFileMode(path) & open) != 0)
        {
            throw new ConfigurationException(
                $"permissions {Convert.ToString((int)File.GetUnixFileMode(path), 8).PadLeft(4, '0')} for '{path}' are too open: the admin token gives full control "
                + $"of the nodes, so no one but its owner may read it. It is not used; make it 0600 (chmod 600 {path})");
        }

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

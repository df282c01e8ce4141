using System.Text.RegularExpressions;

namespace Replicator.Core.Volumes;

/// <summary>Rules for volume names and sizes, shared by the CLI, the admin API and the engine.</summary>
public static partial class VolumeNames
{
    /// <summary>Volume sizes are whole 4 KiB blocks, the unit hypervisors and file systems expect.</summary>
    public const long SizeAlignment = 4096;

    public const int MaxLength = 64;

    /// <summary>Throws <see cref="ArgumentException"/> with a message a person can act on.</summary>
    public static void Validate(string name)
    {
        if (!IsValid(name))
        {
            throw new ArgumentException(
                $"'{name}' is not a valid volume name: use 1 to {MaxLength} letters, digits, '.', '_' or '-', starting with a letter or digit",
                nameof(name));
        }
    }

    public static bool IsValid(string? name) => name is not null && name.Length <= MaxLength && Pattern().IsMatch(name);

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    private static partial Regex Pattern();
}

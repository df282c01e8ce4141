using System.Text.Json;
using Replicator.Core.Storage;
using Replicator.Node.Configuration;

namespace Replicator.Node.Replication;

/// <summary>
/// A volume's settings that the pair agrees on, kept beside its replica files
/// (<c>replicas/&lt;id&gt;/settings.json</c>): which node it prefers.
/// </summary>
internal sealed record VolumeSettings(string? PreferredNode)
{
    public const string FileName = "settings.json";

    public static VolumeSettings Load(IFileSystem files, string replicaDirectory)
    {
        var path = Path.Combine(replicaDirectory, FileName);
        if (!files.FileExists(path))
        {
            return new VolumeSettings(PreferredNode: null);
        }

        try
        {
            return JsonSerializer.Deserialize<VolumeSettings>(files.ReadAllBytes(path), NodeConfig.JsonOptions) ?? new VolumeSettings((string?)null);
        }
        catch (JsonException e)
        {
            throw new ConfigurationException($"{path} is not valid volume settings: {e.Message}");
        }
    }

    public void Save(IFileSystem files, string replicaDirectory) =>
        files.WriteAtomically(Path.Combine(replicaDirectory, FileName), JsonSerializer.SerializeToUtf8Bytes(this, NodeConfig.JsonOptions));

    /// <summary>
    /// The preferred node: the one set by an admin, else one of the two picked from the volume id,
    /// so that across many volumes both nodes get their share and both nodes pick the same.
    /// </summary>
    public string Preferred(Guid volumeId, string localName, string? peerName)
    {
        if (PreferredNode is not null && (PreferredNode == localName || PreferredNode == peerName))
        {
            return PreferredNode;
        }

        if (peerName is null)
        {
            return localName;
        }

        var names = new[] { localName, peerName }.Order(StringComparer.Ordinal).ToArray();
        return names[volumeId.ToByteArray()[0] & 1];
    }
}

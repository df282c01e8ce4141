using System.Text.Json;
using Replicator.Core.Storage;
using Replicator.Core.Tests.Support.Faults;
using Replicator.Node.Cluster;
using Replicator.Node.Configuration;
using Replicator.Node.Gateway;
using Replicator.Node.Replication;
using Replicator.Node.Witness;

namespace Replicator.Node.Tests.Storage;

/// <summary>
/// Issue 13, finding 6: the node's small state files are saved with the one atomic write (temporary
/// file, fsync, rename, directory fsync). For each, a power loss at every step of a save leaves the
/// old file or the new one, never an empty, torn or missing one; a save that returned survives.
/// </summary>
public sealed class StateFileTests
{
    private const string Dir = "/state";
    private static readonly Guid First = Guid.Parse("11111111-1111-1111-1111-111111111111");
    private static readonly Guid Second = Guid.Parse("22222222-2222-2222-2222-222222222222");

    public static TheoryData<string> Files => ["votes.json", "deleted.json", "settings.json", "node.json", "gateway.json", "cluster.json"];

    [Theory]
    [MemberData(nameof(Files))]
    public void A_power_loss_at_any_step_of_a_save_leaves_the_old_file_or_the_new_one(string file)
    {
        var (save, read) = StateFile(file);
        foreach (var mode in Enum.GetValues<PowerLossMode>())
        {
            for (var cut = 1; ; cut++)
            {
                var fs = new FaultFileSystem(seed: cut) { Mode = mode };
                fs.CreateDirectory(Dir);
                save(fs, 1);
                fs.CutPowerAt(cut);
                var completed = false;
                try
                {
                    save(fs, 2);
                    completed = true;
                }
                catch (PowerCutException)
                {
                }

                fs.PowerLoss();
                var version = read(fs);
                Assert.True(version is 1 or 2, $"{file}, {mode}, power cut at change {cut}: read back version {version}");
                if (completed)
                {
                    Assert.Equal(2, version);
                    break;
                }
            }
        }
    }

    /// <summary>How to save version 1 or 2 of the file, and which version is stored (0: missing or unreadable).</summary>
    private static (Action<IFileSystem, int> Save, Func<IFileSystem, int> Read) StateFile(string file)
    {
        var path = Path.Combine(Dir, file);
        return file switch
        {
            "votes.json" => (
                (fs, v) => new WitnessBook(TimeSpan.FromSeconds(5), fs, path).Request(v == 1 ? First : Second, "a", current: 7, bitmap: 4, writingAs: 7, DateTimeOffset.UtcNow),
                fs => Version(fs, path, () => new WitnessBook(TimeSpan.FromSeconds(5), fs, path).Votes.ContainsKey(Second) ? 2 : 1)),
            "deleted.json" => (
                (fs, v) => new Tombstones(fs, Dir).Add(v == 1 ? First : Second),
                fs => Version(fs, path, () => new Tombstones(fs, Dir).Contains(Second) ? 2 : 1)),
            "settings.json" => (
                (fs, v) => new VolumeSettings(v == 1 ? "a" : "b").Save(fs, Dir),
                fs => Version(fs, path, () => VolumeSettings.Load(fs, Dir).PreferredNode == "b" ? 2 : 1)),
            "node.json" => (
                (fs, v) => new NodeConfig { Name = "n" + v, NodeId = First, ClusterId = Second }.Save(fs, Dir),
                fs => Version(fs, path, () => Parse<NodeConfig>(fs, path).Name == "n2" ? 2 : 1)),
            "gateway.json" => (
                (fs, v) => new GatewayConfig { NbdSocket = "g" + v }.Save(fs, Dir),
                fs => Version(fs, path, () => Parse<GatewayConfig>(fs, path).NbdSocket == "g2" ? 2 : 1)),
            _ => (
                (fs, v) => new ClusterManifest { ClusterId = v == 1 ? First : Second, Nodes = [], AdminTokenFile = "t" }.Save(fs, Dir),
                fs => Version(fs, path, () => Parse<ClusterManifest>(fs, path).ClusterId == Second ? 2 : 1)),
        };
    }

    private static int Version(IFileSystem fs, string path, Func<int> read)
    {
        try
        {
            return fs.FileExists(path) ? read() : 0;
        }
        catch (Exception e) when (e is JsonException or ConfigurationException)
        {
            return 0;
        }
    }

    private static T Parse<T>(IFileSystem fs, string path) =>
        JsonSerializer.Deserialize<T>(fs.ReadAllBytes(path), NodeConfig.JsonOptions) ?? throw new JsonException("empty");
}

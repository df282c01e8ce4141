using Replicator.Node.Configuration;

namespace Replicator.Node.Tests.Configuration;

/// <summary>The peer section of <c>node.json</c>: the keepalive timeout and the read lease derived from it or set beside it.</summary>
public sealed class PeerConfigTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("node-config-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void The_read_lease_is_a_quarter_of_the_keepalive_timeout_unless_set()
    {
        Assert.Equal(TimeSpan.FromSeconds(1), Load("\"keepaliveTimeoutSeconds\": 4").Peer!.ConnectionOptions.EffectiveReadLease);
        Assert.Equal(TimeSpan.FromMilliseconds(500), Load("\"keepaliveTimeoutSeconds\": 2").Peer!.ConnectionOptions.EffectiveReadLease);
        Assert.Equal(TimeSpan.FromMilliseconds(250), Load("\"keepaliveTimeoutSeconds\": 2, \"readLeaseSeconds\": 0.25").Peer!.ConnectionOptions.EffectiveReadLease);
    }

    [Theory]
    [InlineData("\"keepaliveTimeoutSeconds\": 2, \"readLeaseSeconds\": 3")]
    [InlineData("\"readLeaseSeconds\": 0.01")]
    [InlineData("\"readLeaseSeconds\": -1")]
    public void A_read_lease_outside_what_can_work_is_refused_naming_the_setting(string peer)
    {
        var refused = Assert.Throws<ConfigurationException>(() => Load(peer));
        Assert.Contains("peer.readLeaseSeconds must be between 0.03 and the keepalive timeout", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Saving_keeps_the_setting_as_written_and_adds_nothing_derived()
    {
        var config = Load("\"readLeaseSeconds\": 0.3");
        config.Save(_directory);
        var saved = File.ReadAllText(NodeConfig.PathIn(_directory));
        Assert.Contains("\"readLeaseSeconds\": 0.3", saved, StringComparison.Ordinal);
        Assert.DoesNotContain("\"readLease\"", saved, StringComparison.Ordinal);
        Assert.Equal(TimeSpan.FromMilliseconds(300), NodeConfig.TryLoad(_directory)!.Peer!.ConnectionOptions.EffectiveReadLease);
    }

    private NodeConfig Load(string peerSettings)
    {
        File.WriteAllText(NodeConfig.PathIn(_directory), $$"""
            {
              "name": "a",
              "nodeId": "{{Guid.NewGuid()}}",
              "clusterId": "{{Guid.NewGuid()}}",
              "peer": { "name": "b", "address": "127.0.0.1:7000", {{peerSettings}} }
            }
            """);
        return NodeConfig.TryLoad(_directory)!;
    }
}

using Replicator.Node.Configuration;

namespace Replicator.Node.Tests.Configuration;

/// <summary>The peer section of <c>node.json</c>: the keepalive timeout and the read lease derived from it or set beside it, encryption, and the volume size cap.</summary>
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

    [Theory]
    [InlineData("\"encryption\": \"tls\"", true)]
    [InlineData("\"encryption\": \"off\"", false)]
    [InlineData("\"encryption\": \"auto\"", false)]
    [InlineData("", false)]
    public void Encryption_is_on_by_default_except_on_a_loopback_link(string setting, bool encrypted)
    {
        Assert.Equal(encrypted, Load(setting).Peer!.WantsEncryption);
    }

    [Fact]
    public void Encryption_is_on_by_default_on_a_link_that_is_not_loopback()
    {
        Assert.True(Load("", address: "10.0.0.2:7000").Peer!.WantsEncryption);
        Assert.True(Load("\"encryption\": \"auto\"", address: "[fd00::2]:7000").Peer!.WantsEncryption);
    }

    [Fact]
    public void Encryption_off_on_a_network_address_is_refused_at_start_unless_the_link_is_declared_dedicated()
    {
        var refused = Assert.Throws<ConfigurationException>(() => Load("\"encryption\": \"off\"", address: "10.0.0.2:7000"));
        Assert.Contains("peer.encryption is 'off' but the peer link uses 10.0.0.2:7000, which is not a loopback address", refused.Message, StringComparison.Ordinal);
        Assert.Contains("peer.dedicatedLink: true", refused.Message, StringComparison.Ordinal);

        Assert.False(Load("\"encryption\": \"off\", \"dedicatedLink\": true", address: "10.0.0.2:7000").Peer!.WantsEncryption);
    }

    [Fact]
    public void An_unknown_encryption_setting_is_refused()
    {
        var refused = Assert.Throws<ConfigurationException>(() => Load("\"encryption\": \"maybe\""));
        Assert.Contains("peer.encryption is 'maybe'", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_volume_larger_than_max_volume_size_is_refused_with_the_setting_named()
    {
        var config = Load("") with { MaxVolumeSize = 1L << 40 };

        Assert.Null(config.VolumeSizeProblem(1L << 40));
        var refused = Assert.Throws<ArgumentException>(() => config.RequireVolumeSize((1L << 40) + 4096));
        Assert.Contains("larger than this node allows (maxVolumeSize 1 TiB in node.json)", refused.Message, StringComparison.Ordinal);
    }

    private NodeConfig Load(string peerSettings, string address = "127.0.0.1:7000")
    {
        File.WriteAllText(NodeConfig.PathIn(_directory), $$"""
            {
              "name": "a",
              "nodeId": "{{Guid.NewGuid()}}",
              "clusterId": "{{Guid.NewGuid()}}",
              "peer": { "name": "b", "address": "{{address}}"{{(peerSettings.Length > 0 ? ", " + peerSettings : "")}} }
            }
            """);
        return NodeConfig.TryLoad(_directory)!;
    }
}

using Replicator.Node.Configuration;

namespace Replicator.Node.Tests.Configuration;

/// <summary>The nbd section of <c>node.json</c>: TLS on by default, plain TCP only on loopback, the caps, the socket's group.</summary>
public sealed class NbdConfigTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("node-config-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void Tls_is_required_by_default_and_a_file_without_the_section_keeps_the_defaults()
    {
        var nbd = Load("127.0.0.1:10809", null).Nbd;

        Assert.True(nbd.RequiresTls);
        Assert.Equal(256, nbd.MaxConnections);
        Assert.Equal(64, nbd.MaxConnectionsPerExport);
        Assert.Null(nbd.SocketGroupId("node.json"));
        Assert.Equal("nbds://127.0.0.1:10809", nbd.TcpUri("127.0.0.1:10809"));
    }

    [Theory]
    [InlineData("127.0.0.1:10809")]
    [InlineData("[::1]:10809")]
    [InlineData("")]
    public void Plain_tcp_is_allowed_on_loopback_or_without_a_tcp_listener(string listen)
    {
        var nbd = Load(listen, "\"tls\": \"off\"").Nbd;

        Assert.False(nbd.RequiresTls);
        Assert.Equal("nbd://127.0.0.1:1", nbd.TcpUri("127.0.0.1:1"));
    }

    [Theory]
    [InlineData("0.0.0.0:10809")]
    [InlineData("10.0.0.1:10809")]
    [InlineData("[::]:10809")]
    public void Plain_tcp_on_an_address_that_is_not_loopback_is_refused_saying_why(string listen)
    {
        var refused = Assert.Throws<ConfigurationException>(() => Load(listen, "\"tls\": \"off\""));

        Assert.Contains("nbd.tls is 'off' but the NBD server would listen on", refused.Message, StringComparison.Ordinal);
        Assert.Contains("which is not a loopback address", refused.Message, StringComparison.Ordinal);
        Assert.Contains("could read and overwrite every volume", refused.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("\"tls\": \"maybe\"", "nbd.tls is 'maybe'")]
    [InlineData("\"maxConnections\": 0", "nbd.maxConnections must be between 1 and 4096")]
    [InlineData("\"maxConnections\": 100000", "nbd.maxConnections must be between 1 and 4096")]
    [InlineData("\"maxConnections\": 8, \"maxConnectionsPerExport\": 9", "nbd.maxConnectionsPerExport must be between 1 and nbd.maxConnections (8)")]
    [InlineData("\"maxConnectionsPerExport\": 0", "nbd.maxConnectionsPerExport must be between 1")]
    [InlineData("\"socketGroup\": \"\"", "nbd.socketGroup must name a group")]
    public void A_setting_that_cannot_work_is_refused_naming_it(string settings, string message)
    {
        var refused = Assert.Throws<ConfigurationException>(() => Load("127.0.0.1:10809", settings));

        Assert.Contains(message, refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_null_section_is_refused_not_a_crash()
    {
        File.WriteAllText(NodeConfig.PathIn(_directory), $$"""
            { "name": "a", "nodeId": "{{Guid.NewGuid()}}", "clusterId": "{{Guid.NewGuid()}}", "nbd": null }
            """);

        var refused = Assert.Throws<ConfigurationException>(() => NodeConfig.TryLoad(_directory));
        Assert.Contains("nbd must be an object", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_socket_group_is_a_number_or_the_name_of_an_existing_group()
    {
        Assert.Equal(1234, Load("127.0.0.1:1", "\"socketGroup\": \"1234\"").Nbd.SocketGroupId("node.json"));
        Assert.Equal(0, Load("127.0.0.1:1", "\"socketGroup\": \"root\"").Nbd.SocketGroupId("node.json"));

        var unknown = Load("127.0.0.1:1", "\"socketGroup\": \"no-such-group-here\"").Nbd;
        var refused = Assert.Throws<ConfigurationException>(() => unknown.SocketGroupId("node.json"));
        Assert.Contains("nbd.socketGroup 'no-such-group-here' is not a group of this system", refused.Message, StringComparison.Ordinal);
    }

    private NodeConfig Load(string listen, string? nbdSettings)
    {
        File.WriteAllText(NodeConfig.PathIn(_directory), $$"""
            {
              "name": "a",
              "nodeId": "{{Guid.NewGuid()}}",
              "clusterId": "{{Guid.NewGuid()}}",
              "nbdListen": "{{listen}}"{{(nbdSettings is null ? "" : $", \"nbd\": {{ {nbdSettings} }}")}}
            }
            """);
        return NodeConfig.TryLoad(_directory)!;
    }
}

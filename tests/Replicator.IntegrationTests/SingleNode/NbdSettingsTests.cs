using System.Text.Json.Nodes;
using Replicator.IntegrationTests.Harness;

namespace Replicator.IntegrationTests.SingleNode;

/// <summary>node.json's nbd section as a running node applies it: the connection caps, with their errors, and the socket's group.</summary>
[Collection(IntegrationCollection.Name)]
public sealed class NbdSettingsTests
{
    [Fact]
    public async Task The_caps_set_in_node_json_refuse_a_connection_beyond_them_saying_which()
    {
        await using var node = await TestNode.StartAsync("1G");
        await node.CreateVolumeAsync("capped", "64M");
        await node.StopAsync();
        await EditNbdAsync(node, nbd =>
        {
            nbd["maxConnections"] = 2;
            nbd["maxConnectionsPerExport"] = 1;
        });
        await node.RestartAsync();

        await using var first = await RawNbdClient.ConnectAsync(node.NbdTcp);
        await first.GoAsync("capped");

        var perExport = await ExternalTool.RunAsync("nbdinfo", [node.Uri("capped")]);
        Assert.True(perExport.ExitCode != 0, perExport.Describe());
        await WaitForLogAsync(node, "export 'capped' already has 1 connections, the most this server allows on one export");

        // nbdinfo's refused connection counts until the server has seen it close: greet again until it has (bounded).
        var deadline = DateTime.UtcNow.AddSeconds(15);
        RawNbdClient second;
        while (true)
        {
            second = await RawNbdClient.ConnectAsync(node.UnixUri("capped"));
            try
            {
                await second.GreetAsync();
                break;
            }
            catch (EndOfStreamException) when (DateTime.UtcNow < deadline)
            {
                await second.DisposeAsync();
                await Task.Delay(200);
            }
        }

        await using var greeted = second;
        var overall = await ExternalTool.RunAsync("nbdinfo", ["--list", node.NbdTcp]);
        Assert.True(overall.ExitCode != 0, overall.Describe());
        await WaitForLogAsync(node, "2 connections are open, the most it allows");
    }

    [Fact]
    public async Task The_unix_socket_is_0660_and_given_to_the_group_node_json_names()
    {
        await using var node = await TestNode.StartAsync("1G");
        await node.StopAsync();
        await EditNbdAsync(node, nbd => nbd["socketGroup"] = "daemon");
        await node.RestartAsync();

        var owner = await ExternalTool.RunCheckedAsync("stat", ["-c", "%a %G", node.SocketPath]);

        Assert.Equal("660 daemon", owner.Stdout.Trim());
    }

    private static async Task EditNbdAsync(TestNode node, Action<JsonObject> edit)
    {
        var path = Path.Combine(node.Directory, "node.json");
        var config = JsonNode.Parse(await File.ReadAllTextAsync(path))!.AsObject();
        edit(config["nbd"]!.AsObject());
        await File.WriteAllTextAsync(path, config.ToJsonString());
    }

    private static async Task WaitForLogAsync(TestNode node, string text) =>
        await TestCluster.WaitUntilAsync(async () => (await File.ReadAllTextAsync(node.LogPath)).Contains(text, StringComparison.Ordinal),
            TimeSpan.FromSeconds(15), $"{node.LogPath} does not say '{text}'");
}

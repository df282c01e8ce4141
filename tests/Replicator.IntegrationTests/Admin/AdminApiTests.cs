using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Replicator.IntegrationTests.Harness;
using Replicator.IntegrationTests.SingleNode;

namespace Replicator.IntegrationTests.Admin;

/// <summary>The admin HTTP API over real HTTP against <c>cluster up</c>: every resource, and the refusals a person must understand.</summary>
[Collection(IntegrationCollection.Name)]
public sealed class AdminApiTests(ClusterFixture fixture) : IClassFixture<ClusterFixture>
{
    private TestCluster Cluster => fixture.Cluster;

    [Fact]
    public async Task A_request_without_a_valid_token_gets_401_with_a_problem_and_is_logged()
    {
        using var http = new HttpClient();
        var url = new Uri(Cluster.Admin("a"), "/api/v1/volumes");
        using var anonymous = await http.GetAsync(url);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal("application/problem+json", anonymous.Content.Headers.ContentType?.MediaType);
        Assert.Contains("Bearer", await anonymous.Content.ReadAsStringAsync());

        using var wrong = new HttpRequestMessage(HttpMethod.Get, url);
        wrong.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "not-the-token");
        using var refused = await http.SendAsync(wrong);
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);

        await TestCluster.WaitUntilAsync(() => Task.FromResult(File.ReadAllText(Path.Combine(Cluster.DataDir("a"), "node.log")).Contains("Refused admin request GET /api/v1/volumes", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(10), "the refusal was not logged");
    }

    [Fact]
    public async Task The_node_resource_names_the_node_its_peer_and_the_witness()
    {
        using var node = await Cluster.GetJsonAsync("a", "/api/v1/node");
        Assert.Equal("a", node.RootElement.GetProperty("name").GetString());
        Assert.False(string.IsNullOrEmpty(node.RootElement.GetProperty("version").GetString()));
        var peer = node.RootElement.GetProperty("peer");
        Assert.Equal("b", peer.GetProperty("name").GetString());
        Assert.True(peer.GetProperty("connected").GetBoolean());
        Assert.True(peer.GetProperty("readLeaseHeld").GetBoolean());
        Assert.Equal(500, peer.GetProperty("readLeaseMs").GetDouble());
        Assert.Contains("witness", node.RootElement.GetProperty("quorum").GetString());

        using var cluster = await Cluster.GetJsonAsync("b", "/api/v1/cluster");
        Assert.Equal(["a", "b"], cluster.RootElement.GetProperty("nodes").EnumerateArray().Select(n => n.GetProperty("name").GetString()));
        Assert.True(cluster.RootElement.GetProperty("witness").GetProperty("reachable").GetBoolean());
        using var pool = await Cluster.GetJsonAsync("a", "/api/v1/pool");
        Assert.Equal(8L << 30, pool.RootElement.GetProperty("capacityBytes").GetInt64());
    }

    [Fact]
    public async Task Volumes_are_created_shown_listed_and_refused_with_clear_problems()
    {
        using var created = await Cluster.SendJsonAsync("a", HttpMethod.Post, "/api/v1/volumes", new { name = "api1", size = "128M" });
        Assert.Equal(128L << 20, created.RootElement.GetProperty("sizeBytes").GetInt64());
        await Cluster.WaitInSyncAsync("api1");
        using var onB = await Cluster.GetJsonAsync("b", "/api/v1/volumes/api1");
        Assert.Equal(created.RootElement.GetProperty("id").GetString(), onB.RootElement.GetProperty("id").GetString());
        var generation = onB.RootElement.GetProperty("replication").GetProperty("generation");
        Assert.Equal(16, generation.GetProperty("current").GetString()!.Length);
        using var list = await Cluster.GetJsonAsync("a", "/api/v1/volumes");
        Assert.Contains("api1", list.RootElement.EnumerateArray().Select(v => v.GetProperty("name").GetString()));

        await AssertProblemAsync(HttpMethod.Post, "/api/v1/volumes", new { name = "api1", size = "1G" }, HttpStatusCode.Conflict, "already exists");
        await AssertProblemAsync(HttpMethod.Post, "/api/v1/volumes", new { name = "bad name!", size = "1G" }, HttpStatusCode.BadRequest, "not a valid volume name");
        await AssertProblemAsync(HttpMethod.Post, "/api/v1/volumes", new { name = "x", size = "lots" }, HttpStatusCode.BadRequest, "is not a size");
        await AssertProblemAsync(HttpMethod.Get, "/api/v1/volumes/nope", null, HttpStatusCode.NotFound, "no volume named 'nope'");
        await AssertProblemAsync(HttpMethod.Post, "/api/v1/volumes/api1/resize", new { size = "64M" }, HttpStatusCode.BadRequest, "shrinking is not supported");
    }

    [Fact]
    public async Task A_grow_is_seen_by_nbdinfo_on_the_next_connection_on_both_nodes()
    {
        using var _ = await Cluster.SendJsonAsync("a", HttpMethod.Post, "/api/v1/volumes", new { name = "grow", size = "64M" });
        await Cluster.WaitInSyncAsync("grow");
        await RealClientTests.QemuIo(Cluster.Uri("a", "grow"), "write -P 0x61 60M 4M");
        using var grown = await Cluster.SendJsonAsync("a", HttpMethod.Post, "/api/v1/volumes/grow/resize", new { size = "256M" });
        Assert.Equal(256L << 20, grown.RootElement.GetProperty("sizeBytes").GetInt64());
        foreach (var node in new[] { "a", "b" })
        {
            var info = await ExternalTool.RunCheckedAsync("nbdinfo", ["--json", Cluster.Uri(node, "grow")]);
            using var json = JsonDocument.Parse(info.Stdout);
            Assert.Equal(256L << 20, json.RootElement.GetProperty("exports")[0].GetProperty("export-size").GetInt64());
        }

        await RealClientTests.QemuIo(Cluster.Uri("b", "grow"), "read -P 0x61 60M 4M", "write -P 0x62 200M 1M");
        await RealClientTests.QemuIo(Cluster.Uri("a", "grow"), "read -P 0x62 200M 1M");
        Assert.Equal(0, await Cluster.VerifyAsync("grow"));
    }

    [Fact]
    public async Task A_delete_is_refused_while_a_client_is_attached_and_needs_confirmation()
    {
        using var _ = await Cluster.SendJsonAsync("a", HttpMethod.Post, "/api/v1/volumes", new { name = "busy", size = "64M" });
        await Cluster.WaitInSyncAsync("busy");
        await using (var client = await RawNbdClient.ConnectAsync(Cluster.UnixUri("b", "")))
        {
            await client.GoAsync("busy");
            await AssertProblemAsync(HttpMethod.Delete, "/api/v1/volumes/busy?confirm=true", null, HttpStatusCode.Conflict, "attached");
        }

        await AssertProblemAsync(HttpMethod.Delete, "/api/v1/volumes/busy", null, HttpStatusCode.BadRequest, "confirm=true");
        await TestCluster.WaitUntilAsync(async () =>
        {
            using var volume = await Cluster.GetJsonAsync("b", "/api/v1/volumes/busy");
            return volume.RootElement.GetProperty("attachedClients").GetInt32() == 0;
        }, TimeSpan.FromSeconds(10), "the NBD client did not detach");
        using (await Cluster.SendJsonAsync("a", HttpMethod.Delete, "/api/v1/volumes/busy?confirm=true"))
        {
        }

        await AssertProblemAsync(HttpMethod.Get, "/api/v1/volumes/busy", null, HttpStatusCode.NotFound, "no volume", node: "b");
    }

    [Fact]
    public async Task A_resync_is_paused_and_resumed_and_a_verify_is_started_and_its_result_read()
    {
        var volume = await fixture.NewVolumeAsync("256M", preferred: "a");
        await Cluster.KillAsync("b");
        await RealClientTests.QemuIo(Cluster.Uri("a", volume), "write -P 0x71 0 32M");
        using (var paused = await Cluster.SendJsonAsync("a", HttpMethod.Post, $"/api/v1/volumes/{volume}/resync/pause"))
        {
            Assert.Equal(32L << 20, paused.RootElement.GetProperty("outOfSyncBytes").GetInt64());
        }

        await Cluster.RestartAsync("b");
        await TestCluster.WaitUntilAsync(async () => (await Cluster.VolumeAsync("a", volume)).Connection == "connected", TimeSpan.FromSeconds(30), "b did not reconnect");
        using (var status = await Cluster.GetJsonAsync("a", $"/api/v1/volumes/{volume}/resync"))
        {
            Assert.Equal("paused", status.RootElement.GetProperty("resync").GetProperty("state").GetString());
            Assert.Equal(32L << 20, status.RootElement.GetProperty("outOfSyncBytes").GetInt64());
        }

        using (await Cluster.SendJsonAsync("a", HttpMethod.Post, $"/api/v1/volumes/{volume}/resync/resume"))
        {
        }

        await Cluster.WaitInSyncAsync(volume);
        using (var started = await Cluster.SendJsonAsync("b", HttpMethod.Post, $"/api/v1/volumes/{volume}/verify"))
        {
            Assert.Contains(started.RootElement.GetProperty("state").GetString(), new[] { "running", "completed" });
        }

        JsonDocument? result = null;
        await TestCluster.WaitUntilAsync(async () =>
        {
            result?.Dispose();
            result = await Cluster.GetJsonAsync("b", $"/api/v1/volumes/{volume}/verify");
            return result.RootElement.GetProperty("state").GetString() == "completed";
        }, TimeSpan.FromSeconds(60), "the verify did not complete");
        Assert.Equal(0, result!.RootElement.GetProperty("differingRegions").GetInt64());
        Assert.Equal(256L << 20, result.RootElement.GetProperty("checkedBytes").GetInt64());
        result.Dispose();
    }

    [Fact]
    public async Task The_openapi_document_describes_every_resource()
    {
        using var document = await Cluster.GetJsonAsync("a", "/api/v1/openapi.json");
        var paths = document.RootElement.GetProperty("paths").EnumerateObject().Select(p => p.Name).ToHashSet();
        foreach (var path in new[] { "/api/v1/node", "/api/v1/cluster", "/api/v1/pool", "/api/v1/volumes", "/api/v1/volumes/{name}", "/api/v1/volumes/{name}/resize",
            "/api/v1/volumes/{name}/preferred", "/api/v1/volumes/{name}/verify", "/api/v1/volumes/{name}/resync", "/api/v1/volumes/{name}/resync/pause",
            "/api/v1/volumes/{name}/resync/resume", "/api/v1/volumes/{name}/resync/checksum", "/api/v1/volumes/{name}/resync/resolve", "/metrics",
            "/api/v1/volumes/{name}/scrub", "/api/v1/volumes/{name}/scrub/start", "/api/v1/volumes/{name}/scrub/pause", "/api/v1/volumes/{name}/scrub/resume",
            "/api/v1/volumes/{name}/scrub/settings" })
        {
            Assert.Contains(path, paths);
        }
    }

    private async Task AssertProblemAsync(HttpMethod method, string path, object? body, HttpStatusCode status, string detail, string node = "a")
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(method, new Uri(Cluster.Admin(node), path));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Cluster.Token);
        if (body is not null)
        {
            request.Content = JsonContent.Create(body);
        }

        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"{method} {path}: {(int)response.StatusCode} {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(text);
        Assert.Contains(detail, problem.RootElement.GetProperty("detail").GetString(), StringComparison.OrdinalIgnoreCase);
    }
}

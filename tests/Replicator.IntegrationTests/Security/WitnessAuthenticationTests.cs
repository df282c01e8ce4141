using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Replicator.IntegrationTests.Harness;
using Replicator.IntegrationTests.SingleNode;

namespace Replicator.IntegrationTests.Security;

/// <summary>
/// The witness goes by the certificate a request comes with: a node moves its own vote only, an
/// administrator reads the votes, and the admin token without a certificate does not get in at all.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class WitnessAuthenticationTests
{
    [Fact]
    public async Task A_node_can_neither_release_nor_claim_the_vote_the_other_node_holds()
    {
        await using var cluster = await TestCluster.StartAsync();
        using var volume = await cluster.GetJsonAsync("a", "/api/v1/volumes/vol0");
        var id = volume.RootElement.GetProperty("id").GetGuid();

        // b dies; a writes alone, so the witness gives a the vote.
        await cluster.KillAsync("b");
        await RealClientTests.QemuIo(cluster.UnixUri("a", "vol0"), "write -P 0x4d 0 64k");
        using var admin = cluster.WitnessClient(Path.Combine(cluster.Directory, "tls", "admin"), client: true);
        await TestCluster.WaitUntilAsync(async () => await HolderAsync(admin, id) == "a", TimeSpan.FromSeconds(30), "the witness did not give a the vote");

        using var asB = cluster.WitnessClient(cluster.NodeTlsDirectory("b"));
        var release = await asB.PostAsJsonAsync($"/api/v1/votes/{id}/release", new { node = "a" });
        Assert.Equal(HttpStatusCode.Forbidden, release.StatusCode);
        Assert.Contains("node 'b' may release only its own vote, not node 'a''s", await release.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        var claim = await asB.PostAsJsonAsync($"/api/v1/votes/{id}", new { node = "a", current = "0000000000000001", writingAs = "0000000000000001" });
        Assert.Equal(HttpStatusCode.Forbidden, claim.StatusCode);

        // Released "as itself", b gives back nothing: it holds nothing.
        Assert.Equal(HttpStatusCode.NoContent, (await asB.PostAsJsonAsync($"/api/v1/votes/{id}/release", new { })).StatusCode);

        var byAdmin = await admin.PostAsJsonAsync($"/api/v1/votes/{id}/release", new { node = "a" });
        Assert.Equal(HttpStatusCode.Forbidden, byAdmin.StatusCode);
        Assert.Contains("may read the votes but not release one", await byAdmin.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // The admin token alone does not even get a TLS session: no certificate, no request.
        using var tokenOnly = new HttpClient(new SocketsHttpHandler { SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true } })
        {
            BaseAddress = admin.BaseAddress,
            Timeout = TimeSpan.FromSeconds(10),
        };
        tokenOnly.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", cluster.Token);
        await Assert.ThrowsAsync<HttpRequestException>(() => tokenOnly.PostAsJsonAsync($"/api/v1/votes/{id}/release", new { node = "a" }));

        Assert.Equal("a", await HolderAsync(admin, id));
        var log = await File.ReadAllTextAsync(Path.Combine(cluster.Directory, "witness", "witness.log"));
        Assert.Contains("Refused a vote release for volume", log, StringComparison.Ordinal);
    }

    private static async Task<string?> HolderAsync(HttpClient witness, Guid volume)
    {
        using var votes = JsonDocument.Parse(await witness.GetStringAsync("/api/v1/votes"));
        return votes.RootElement.EnumerateArray().Where(v => v.GetProperty("volume").GetGuid() == volume).Select(v => v.GetProperty("holder").GetString()).FirstOrDefault();
    }
}

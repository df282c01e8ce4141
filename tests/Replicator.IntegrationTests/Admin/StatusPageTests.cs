using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Replicator.IntegrationTests.Harness;
using Replicator.IntegrationTests.SingleNode;
using Xunit.Abstractions;

namespace Replicator.IntegrationTests.Admin;

/// <summary>
/// The status page at <c>GET /</c> of a node's admin port: its assets are served without the token,
/// every data request needs it, and a real browser (headless chromium) shows a resync advance.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed partial class StatusPageTests(ClusterFixture fixture, ITestOutputHelper output) : IClassFixture<ClusterFixture>
{
    private const int Width = 1280;
    private const int Height = 800;

    /// <summary>Written through a while b is down; resent at 8 MiB/s, it takes 16 s: long enough to look twice.</summary>
    private const long Dirtied = 128L << 20;

    private TestCluster Cluster => fixture.Cluster;

    private string Origin => Cluster.Admin("a").GetLeftPart(UriPartial.Authority);

    [Fact]
    public async Task The_page_and_its_assets_need_no_token_and_every_data_request_does()
    {
        using var http = new HttpClient { BaseAddress = new Uri(Origin), Timeout = TimeSpan.FromSeconds(10) };
        using var page = await http.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        Assert.Contains("connect-src 'self'", page.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
        var html = await page.Content.ReadAsStringAsync();
        var assets = AssetReference().Matches(html).Select(m => m.Groups[1].Value).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(["/ui/favicon.svg", "/ui/status.css", "/ui/status.js"], assets);

        var types = new Dictionary<string, string> { [".svg"] = "image/svg+xml", [".css"] = "text/css", [".js"] = "text/javascript" };
        foreach (var asset in assets)
        {
            using var response = await http.GetAsync(asset);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(types[Path.GetExtension(asset)], response.Content.Headers.ContentType?.MediaType);
            var content = await response.Content.ReadAsStringAsync();
            Assert.NotEmpty(content);
            if (asset.EndsWith(".js", StringComparison.Ordinal))
            {
                // What the API returns reaches the page as text nodes and attribute values only.
                foreach (var sink in new[] { "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(" })
                {
                    Assert.DoesNotContain(sink, content, StringComparison.Ordinal);
                }
            }

            using var revalidate = new HttpRequestMessage(HttpMethod.Get, asset);
            revalidate.Headers.IfNoneMatch.Add(response.Headers.ETag!);
            using var unchanged = await http.SendAsync(revalidate);
            Assert.Equal(HttpStatusCode.NotModified, unchanged.StatusCode);
        }

        foreach (var path in new[] { "/api/v1/cluster", "/api/v1/volumes", "/api/v1/openapi.json", "/metrics", "/index.html", "/ui/other.js" })
        {
            using var refused = await http.GetAsync(path);
            Assert.True(refused.StatusCode == HttpStatusCode.Unauthorized, $"GET {path} without the token answered {(int)refused.StatusCode}");
        }

        using var data = new HttpRequestMessage(HttpMethod.Get, "/api/v1/cluster");
        data.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Cluster.Token);
        using var answer = await http.SendAsync(data);
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
    }

    [Fact]
    public async Task Without_a_token_the_page_asks_for_one_and_says_where_it_is()
    {
        await using var chromium = await HeadlessChromium.StartAsync(Width, Height);
        await chromium.NavigateAsync(Origin + "/");
        var form = await chromium.WaitForAsync("document.getElementById('token-form')?.innerText ?? null", TimeSpan.FromSeconds(30), "the page did not ask for a token");
        Assert.Contains("admin.token", form.GetValue<string>(), StringComparison.Ordinal);

        await chromium.EvaluateAsync(SubmitToken("not-the-token"));
        var refused = await chromium.WaitForAsync("document.querySelector('#token-form .error')?.innerText ?? null", TimeSpan.FromSeconds(30),
            "the page did not say that a wrong token was refused");
        Assert.Contains("refused", refused.GetValue<string>(), StringComparison.Ordinal);

        await chromium.EvaluateAsync(SubmitToken(Cluster.Token));
        await chromium.WaitForAsync("document.querySelectorAll('.card.node').length === 2 || null", TimeSpan.FromSeconds(30),
            "the page did not show both nodes once given the token");
    }

    [Fact]
    public async Task Headless_chromium_shows_a_resync_and_its_progress_advancing()
    {
        var volume = await fixture.NewVolumeAsync("1G", preferred: "a");
        await Cluster.KillAsync("b");
        var fill = await Fio.RunAsync(Cluster.Uri("a", volume), Path.GetTempPath(), "statuspage",
            "--rw=write", "--bs=1M", $"--size={Dirtied}", "--iodepth=4");
        Assert.True(fill.ExitCode == 0 && fill.Errors == 0, fill.Output);
        await Cluster.SendJsonAsync("a", HttpMethod.Put, $"/api/v1/volumes/{volume}/resync/settings", new { rateLimit = "8M" });

        await using var chromium = await HeadlessChromium.StartAsync(Width, Height);
        await chromium.NavigateAsync($"{Origin}/#token={Cluster.Token}");

        // b is down: the page shows it unreachable and what a will send once it is back.
        var waiting = await WaitForLookAsync(chromium, volume, v => Text(v, "state") == "waiting" && Text(v, "bReachable") == "false", TimeSpan.FromSeconds(30),
            "the page did not show b unreachable and the volume waiting for it");
        Assert.InRange(Number(waiting, "total"), Dirtied * 0.9, Dirtied);
        Assert.Equal("degraded", Text(waiting, "health"));
        Assert.DoesNotContain("token", Text(waiting, "address"), StringComparison.Ordinal);

        await Cluster.RestartAsync("b");
        var first = await WaitForLookAsync(chromium, volume,
            v => Text(v, "state") == "running" && Number(v, "done") > 0 && Number(v, "done") < Number(v, "total") && Number(v, "rate") > 0,
            TimeSpan.FromSeconds(60), "the page did not show the resync running");
        output.WriteLine($"first look: {first.ToJsonString()}");
        var text = Text(first, "text");
        Assert.Matches(@"\d+(\.\d)?%", text);
        Assert.Contains("a → b", text, StringComparison.Ordinal);
        Assert.Matches(@"\d+(\.\d+)? [KM]iB/s \(cap 8 MiB/s\)", text);
        Assert.Matches(@"ETA \d+ (s|min)", text);
        Assert.Equal("resync", Text(first, "health"));
        Assert.InRange(Number(first, "total"), Dirtied * 0.9, Dirtied);
        Assert.True(double.Parse(Text(first, "barWidth").TrimEnd('%'), System.Globalization.CultureInfo.InvariantCulture) > 0,
            $"the progress bar is empty: {first.ToJsonString()}");

        await Task.Delay(TimeSpan.FromSeconds(3));
        var second = await WaitForLookAsync(chromium, volume, _ => true, TimeSpan.FromSeconds(10), "the page lost the resync");
        output.WriteLine($"second look: {second.ToJsonString()}");
        Assert.True(Number(second, "done") > Number(first, "done"),
            $"the done bytes shown did not advance in 3 s: {first["done"]} then {second["done"]}");
        Assert.NotEqual(text, Text(second, "text"));

        var screenshot = Path.Combine(AppContext.BaseDirectory, "test-output", "status-page-resync.png");
        Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
        await File.WriteAllBytesAsync(screenshot, await chromium.ScreenshotAsync());
        output.WriteLine($"screenshot of the status page during the resync: {screenshot}");

        // Every request the page made went to this node, and none carried the token in its address.
        foreach (var request in second["requests"]!.AsArray().Select(r => r!.GetValue<string>()))
        {
            Assert.StartsWith(Origin + "/", request, StringComparison.Ordinal);
            Assert.DoesNotContain(Cluster.Token, request, StringComparison.Ordinal);
        }

        await Cluster.SendJsonAsync("a", HttpMethod.Put, $"/api/v1/volumes/{volume}/resync/settings", new { rateLimit = "0" });
        await Cluster.WaitInSyncAsync(volume);
        await WaitForLookAsync(chromium, volume, v => Text(v, "state") == "idle" && Text(v, "row") == "ok", TimeSpan.FromSeconds(30),
            "the page did not show the volume back in sync");
        Assert.Equal(0, await Cluster.VerifyAsync(volume));
    }

    /// <summary>Looks at the page until what it shows satisfies <paramref name="condition"/>; the failure names the last look.</summary>
    private async Task<JsonNode> WaitForLookAsync(HeadlessChromium chromium, string volume, Func<JsonNode, bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        JsonNode? last = null;
        var shown = "";
        while (true)
        {
            last = await chromium.EvaluateAsync(Look(volume)) ?? last;
            if (last is not null && Text(last, "text") != shown)
            {
                shown = Text(last, "text");
                output.WriteLine($"{DateTime.Now:HH:mm:ss.f} the page shows {Text(last, "state")}: {shown.ReplaceLineEndings(" | ")}");
            }

            if (last is not null && condition(last))
            {
                return last;
            }

            Assert.True(DateTime.UtcNow < deadline, $"{what} within {timeout.TotalSeconds} s; last look: {last?.ToJsonString() ?? "no volume row"}");
            await Task.Delay(250);
        }
    }

    private static string Text(JsonNode look, string name) => look[name]?.GetValue<string>() ?? "";

    private static double Number(JsonNode look, string name) => look[name]?.GetValue<double>() ?? 0;

    /// <summary>A script that reads, from the DOM only, what the page shows for the volume's resync and the nodes (null until the volume is shown).</summary>
    private static string Look(string volume) => $$"""
        (() => {
          const resync = document.querySelector({{JsonSerializer.Serialize($".resync-progress[data-volume=\"{volume}\"]")}});
          const row = document.querySelector({{JsonSerializer.Serialize($"tr.volume[data-volume=\"{volume}\"]")}});
          const b = document.querySelector('.card.node[data-node="b"]');
          if (!resync || !row || !b) return null;
          const fill = resync.querySelector('.bar .fill');
          const v = {
            state: resync.dataset.state,
            done: Number(resync.dataset.doneBytes || 0),
            total: Number(resync.dataset.totalBytes || 0),
            rate: Number(resync.dataset.bytesPerSecond || 0),
            text: resync.innerText,
            barWidth: fill ? fill.style.width : null,
            row: row.dataset.health,
            bReachable: b.dataset.reachable,
            health: document.getElementById('health').dataset.health,
            address: location.href,
            requests: performance.getEntriesByType('resource').map(r => r.name),
          };
          return v;
        })()
        """;

    private static string SubmitToken(string token) => $$"""
        (() => {
          const form = document.getElementById('token-form');
          form.querySelector('input').value = {{JsonSerializer.Serialize(token)}};
          form.requestSubmit();
          return true;
        })()
        """;

    [GeneratedRegex("(?:src|href)=\"(/ui/[^\"]+)\"")]
    private static partial Regex AssetReference();
}

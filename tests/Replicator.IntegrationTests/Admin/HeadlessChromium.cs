using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Replicator.IntegrationTests.Harness;

namespace Replicator.IntegrationTests.Admin;

/// <summary>
/// Debian's <c>chromium</c>, headless, in a fresh profile directory, driven over the DevTools
/// protocol (JSON over a WebSocket): navigate, evaluate a script in the page, take a screenshot.
/// One command at a time; events are read and dropped. Ended by its own pid, profile deleted.
/// </summary>
public sealed class HeadlessChromium : IAsyncDisposable
{
    /// <summary>The flags every headless run here uses; the test adds only its profile, the DevTools port and the window size.</summary>
    public static readonly string[] Flags =
    [
        "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ];

    private static readonly TimeSpan s_commandTimeout = TimeSpan.FromSeconds(30);

    private readonly Process _process;
    private readonly string _profile;
    private readonly StringBuilder _log = new();
    private readonly Lock _lock = new();
    private ClientWebSocket? _socket;
    private bool _started;
    private int _nextId;

    private HeadlessChromium(Process process, string profile)
    {
        _process = process;
        _profile = profile;
    }

    public int Pid => _process.Id;

    /// <summary>What chromium printed, for a failure message.</summary>
    public string Log
    {
        get
        {
            lock (_lock)
            {
                return _log.ToString();
            }
        }
    }

    public static async Task<HeadlessChromium> StartAsync(int width, int height)
    {
        var program = ExternalTool.Require("chromium");
        var profile = Directory.CreateTempSubdirectory("replicator-chromium-").FullName;
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var flag in Flags)
        {
            start.ArgumentList.Add(flag);
        }

        start.ArgumentList.Add("--user-data-dir=" + profile);
        start.ArgumentList.Add("--remote-debugging-port=0");
        start.ArgumentList.Add($"--window-size={width},{height}");
        start.ArgumentList.Add("about:blank");
        var process = new Process { StartInfo = start };
        var chromium = new HeadlessChromium(process, profile);
        process.OutputDataReceived += (_, e) => chromium.Append(e.Data);
        process.ErrorDataReceived += (_, e) => chromium.Append(e.Data);
        try
        {
            chromium._started = process.Start();
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            await chromium.ConnectAsync(TimeSpan.FromSeconds(60));
            await chromium.SendAsync("Emulation.setDeviceMetricsOverride", new { width, height, deviceScaleFactor = 1, mobile = false });
            return chromium;
        }
        catch
        {
            await chromium.DisposeAsync();
            throw;
        }
    }

    public async Task NavigateAsync(string url)
    {
        var result = await SendAsync("Page.navigate", new { url });
        Assert.True(result["errorText"] is null, $"chromium could not open {url}: {result["errorText"]}");
    }

    /// <summary>Evaluates a JavaScript expression in the page and returns its value as JSON (null when it is null or undefined).</summary>
    public async Task<JsonNode?> EvaluateAsync(string expression)
    {
        var result = await SendAsync("Runtime.evaluate", new { expression, returnByValue = true, awaitPromise = true });
        Assert.True(result["exceptionDetails"] is null, $"the page threw evaluating {expression}: {result["exceptionDetails"]?.ToJsonString()}");
        return result["result"]?["value"]?.DeepClone();
    }

    /// <summary>Evaluates <paramref name="expression"/> until it returns a non-null value, at most <paramref name="timeout"/>.</summary>
    public async Task<JsonNode> WaitForAsync(string expression, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (await EvaluateAsync(expression) is { } value)
            {
                return value;
            }

            Assert.True(DateTime.UtcNow < deadline, $"{what} within {timeout.TotalSeconds} s");
            await Task.Delay(250);
        }
    }

    public async Task<byte[]> ScreenshotAsync()
    {
        var result = await SendAsync("Page.captureScreenshot", new { format = "png" });
        return Convert.FromBase64String(result["data"]!.GetValue<string>());
    }

    public async ValueTask DisposeAsync()
    {
        if (_socket is not null)
        {
            _socket.Abort();
            _socket.Dispose();
        }

        if (_started && !_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }

        _process.Dispose();
        // Helper processes may still be closing files in the profile for a moment.
        for (var attempt = 0; Directory.Exists(_profile); attempt++)
        {
            try
            {
                Directory.Delete(_profile, recursive: true);
            }
            catch (IOException) when (attempt < 20)
            {
                await Task.Delay(100);
            }
        }
    }

    /// <summary>Reads the port chromium chose from DevToolsActivePort, finds the blank page's target and opens its WebSocket.</summary>
    private async Task ConnectAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var portFile = Path.Combine(_profile, "DevToolsActivePort");
        string[] lines;
        while (true)
        {
            lines = File.Exists(portFile) ? (await File.ReadAllTextAsync(portFile)).Split('\n', StringSplitOptions.RemoveEmptyEntries) : [];
            if (lines.Length >= 2)
            {
                break;
            }

            Assert.False(_process.HasExited, $"chromium exited with {(_process.HasExited ? _process.ExitCode : 0)} before it listened:\n{Log}");
            Assert.True(DateTime.UtcNow < deadline, $"chromium did not write {portFile} within {timeout.TotalSeconds} s:\n{Log}");
            await Task.Delay(100);
        }

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        string? page = null;
        while (page is null)
        {
            var targets = JsonNode.Parse(await http.GetStringAsync($"http://127.0.0.1:{lines[0].Trim()}/json/list"))!.AsArray();
            page = targets.FirstOrDefault(t => t?["type"]?.GetValue<string>() == "page")?["webSocketDebuggerUrl"]?.GetValue<string>();
            if (page is null)
            {
                Assert.True(DateTime.UtcNow < deadline, $"chromium opened no page within {timeout.TotalSeconds} s:\n{Log}");
                await Task.Delay(100);
            }
        }

        _socket = new ClientWebSocket();
        using var cts = new CancellationTokenSource(s_commandTimeout);
        await _socket.ConnectAsync(new Uri(page), cts.Token);
    }

    /// <summary>Sends one DevTools command and returns its result, skipping the events that arrive meanwhile.</summary>
    private async Task<JsonNode> SendAsync(string method, object parameters)
    {
        var socket = _socket ?? throw new InvalidOperationException("not connected");
        var id = ++_nextId;
        var request = JsonSerializer.SerializeToUtf8Bytes(new { id, method, @params = parameters });
        using var cts = new CancellationTokenSource(s_commandTimeout);
        try
        {
            await socket.SendAsync(request, WebSocketMessageType.Text, endOfMessage: true, cts.Token);
            var buffer = new byte[64 * 1024];
            while (true)
            {
                using var message = new MemoryStream();
                WebSocketReceiveResult received;
                do
                {
                    received = await socket.ReceiveAsync(buffer, cts.Token);
                    Assert.True(received.MessageType != WebSocketMessageType.Close, $"chromium closed the DevTools connection during {method}:\n{Log}");
                    message.Write(buffer, 0, received.Count);
                }
                while (!received.EndOfMessage);

                var reply = JsonNode.Parse(message.ToArray())!;
                if (reply["id"]?.GetValue<int>() != id)
                {
                    continue;
                }

                Assert.True(reply["error"] is null, $"{method} failed: {reply["error"]?.ToJsonString()}");
                return reply["result"]!;
            }
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"chromium did not answer {method} within {s_commandTimeout.TotalSeconds} s:\n{Log}");
            throw;
        }
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_lock)
            {
                _log.AppendLine(line);
            }
        }
    }
}

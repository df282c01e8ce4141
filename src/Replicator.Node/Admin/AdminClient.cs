using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Replicator.Node.Cli;
using Replicator.Node.Configuration;

namespace Replicator.Node.Admin;

/// <summary>The CLI's side of the admin API: typed calls, problem details turned into one-line errors.</summary>
internal sealed class AdminClient : IDisposable
{
    private readonly HttpClient _http;

    public AdminClient(Uri baseAddress, string token, TimeSpan? timeout = null)
    {
        BaseAddress = baseAddress;
        _http = new HttpClient { BaseAddress = baseAddress, Timeout = timeout ?? TimeSpan.FromSeconds(30) };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    /// <summary>Over a client that authenticates on its own (a certificate, for the witness); it is disposed with this one.</summary>
    public AdminClient(HttpClient http)
    {
        _http = http;
        BaseAddress = http.BaseAddress ?? throw new ArgumentException("The client needs a base address.", nameof(http));
    }

    public Uri BaseAddress { get; }

    public Task<T> GetAsync<T>(string path, CancellationToken ct) => SendAsync<T>(HttpMethod.Get, path, null, ct);

    public Task<T> PostAsync<T>(string path, object? body, CancellationToken ct) => SendAsync<T>(HttpMethod.Post, path, body, ct);

    public Task<T> PutAsync<T>(string path, object? body, CancellationToken ct) => SendAsync<T>(HttpMethod.Put, path, body, ct);

    public async Task DeleteAsync(string path, CancellationToken ct) => await SendAsync<JsonElement?>(HttpMethod.Delete, path, null, ct);

    public void Dispose() => _http.Dispose();

    private async Task<T> SendAsync<T>(HttpMethod method, string path, object? body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, AdminApi.Prefix + path);
        if (body is not null)
        {
            request.Content = JsonContent.Create(body, body.GetType(), options: NodeConfig.JsonOptions);
        }

        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, ct);
        }
        catch (HttpRequestException e)
        {
            throw new CliException(ExitCodes.Unreachable, $"cannot reach the admin API at {BaseAddress}: {e.Message}");
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new CliException(ExitCodes.Unreachable, $"the admin API at {BaseAddress} did not answer within {_http.Timeout.TotalSeconds:0} s");
        }

        using (response)
        {
            if (!response.IsSuccessStatusCode)
            {
                throw new CliException(ExitCodes.Failed, await DescribeFailureAsync(response, ct));
            }

            if (response.StatusCode == HttpStatusCode.NoContent || response.Content.Headers.ContentLength == 0)
            {
                return default!;
            }

            return (await response.Content.ReadFromJsonAsync<T>(NodeConfig.JsonOptions, ct))!;
        }
    }

    private static async Task<string> DescribeFailureAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var text = await response.Content.ReadAsStringAsync(ct);
        try
        {
            using var doc = JsonDocument.Parse(text);
            if (doc.RootElement.TryGetProperty("detail", out var detail) && detail.GetString() is { Length: > 0 } message)
            {
                return message;
            }
        }
        catch (JsonException)
        {
        }

        return $"the node answered {(int)response.StatusCode} {response.ReasonPhrase}";
    }
}

using System.Net.Http.Headers;
using System.Net.Http.Json;
using Replicator.Node.Configuration;
using Replicator.Node.Replication;
using Replicator.Node.Roles;
using Replicator.Node.Security;
using Replicator.Node.Storage;
using Replicator.Protocol.Security;

namespace Replicator.Node.Admin;

/// <summary>
/// Builds <c>GET /api/v1/cluster</c>: this node's own state, its peer's (from the peer's admin API,
/// with the shared token) and the witness's votes, each marked unreachable rather than failing
/// the whole answer — the status page shows a dead node as dead.
/// </summary>
internal sealed class ClusterViewBuilder(NodeConfig config, string token, NodeSecurity? security, NodeIdentity identity, NodeStorage storage, ReplicationManager volumes, VolumeExports exports) : IDisposable
{
    private readonly HttpClient _http = CreateClient(token);
    private readonly HttpClient? _witness = config.Witness is { Address: var address } && security is not null
        ? ClusterHttps.CreateClient(new Uri($"https://{address}"), security.Credentials, security.Trust, IdentityRole.Witness, TimeSpan.FromSeconds(2))
        : null;

    public async Task<ClusterView> BuildAsync(string selfAdmin, CancellationToken ct)
    {
        var self = new NodeStatus(config.Name, selfAdmin, true, null, AdminApi.Describe(identity, volumes), AdminApi.ToInfo(storage.Pool),
            volumes.Volumes.Select(v => AdminApi.ToInfo(v, volumes, exports)).ToList());
        var nodes = new List<NodeStatus> { self };
        if (config.Peer is { Name: var peerName, Admin: { } peerAdmin })
        {
            nodes.Add(await PeerAsync(peerName, peerAdmin, ct));
        }

        WitnessStatus? witness = null;
        if (config.Witness is { Address: var address } && _witness is not null)
        {
            try
            {
                var votes = await _witness.GetFromJsonAsync<List<Witness.VoteInfo>>("/api/v1/votes", NodeConfig.JsonOptions, ct) ?? [];
                witness = new WitnessStatus(address, true, null, votes);
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException)
            {
                witness = new WitnessStatus(address, false, e.Message, []);
            }
        }

        return new ClusterView(nodes.OrderBy(n => n.Name, StringComparer.Ordinal).ToList(), witness);
    }

    public void Dispose()
    {
        _http.Dispose();
        _witness?.Dispose();
    }

    private async Task<NodeStatus> PeerAsync(string name, string admin, CancellationToken ct)
    {
        try
        {
            var node = await _http.GetFromJsonAsync<NodeInfo>($"{admin}{AdminApi.Prefix}/node", NodeConfig.JsonOptions, ct);
            var pool = await _http.GetFromJsonAsync<PoolInfo>($"{admin}{AdminApi.Prefix}/pool", NodeConfig.JsonOptions, ct);
            var list = await _http.GetFromJsonAsync<List<VolumeInfo>>($"{admin}{AdminApi.Prefix}/volumes", NodeConfig.JsonOptions, ct) ?? [];
            return new NodeStatus(name, admin, true, null, node, pool, list);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException)
        {
            return new NodeStatus(name, admin, false, e.Message, null, null, []);
        }
    }

    private static HttpClient CreateClient(string token)
    {
        var http = new HttpClient { Timeout = TimeSpan.FromSeconds(1) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return http;
    }
}

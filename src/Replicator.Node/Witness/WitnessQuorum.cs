using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using Replicator.Core.Devices;
using Replicator.Core.Replication;
using Replicator.Node.Configuration;
using Replicator.Node.Hosting;
using Replicator.Node.Security;
using Replicator.Protocol.Security;

namespace Replicator.Node.Witness;

/// <summary>
/// The node's side of the witness: a volume that has lost its peer writes alone only while this
/// node holds the witness's vote for it. The vote is a lease, renewed every second while the
/// volume is unpaired; the node counts it valid only until a margin before the witness would let
/// it go (timed from when the request was sent), so another node can never take over while this
/// one still writes. Without the witness's answer, no write alone. The node talks to the witness over
/// mutual TLS with its own certificate, which is what the witness goes by: it moves no other node's vote.
/// </summary>
internal sealed partial class WitnessQuorum : IWriteQuorum, IDisposable
{
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Margin = TimeSpan.FromSeconds(1);

    /// <summary>How often an idle node touches the witness, so an authenticated connection is always ready.</summary>
    private const int KeepWarmTicks = 5;

    private readonly HttpClient _http;
    private readonly string _node;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<Guid, Lease> _leases = new();
    private readonly ConcurrentDictionary<(Guid Volume, GenerationIds WritingAs), Lazy<Task<VoteAnswer?>>> _claims = new();
    private readonly LogThrottle _refusals = new(1, TimeSpan.FromSeconds(30));
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _renewals;

    private readonly Func<IReadOnlyList<ReplicatedVolume>>? _volumes;

    public WitnessQuorum(NodeConfig config, NodeSecurity security, ILogger<WitnessQuorum> logger, Func<IReadOnlyList<ReplicatedVolume>>? volumes = null)
    {
        _volumes = volumes;
        Address = config.Witness!.Address;
        _node = config.Name;
        _logger = logger;
        _http = ClusterHttps.CreateClient(new Uri($"https://{Address}"), security.Credentials, security.Trust, IdentityRole.Witness, RequestTimeout, reason =>
        {
            if (_refusals.TryEnter(out _))
            {
                LogWitnessRefused(Address, reason);
            }
        });
        _renewals = Task.Run(() => RenewLoopAsync(_stop.Token));
    }

    public string Address { get; }

    public string Describe() => $"witness at {Address}: a node that loses its peer keeps writing only while it holds the witness's vote";

    public ValueTask EnsureMayWriteAloneAsync(ReplicatedVolume volume, GenerationIds writingAs, CancellationToken cancellationToken) =>
        _leases.TryGetValue(volume.Id, out var lease) && lease.Covers(writingAs)
            ? ValueTask.CompletedTask
            : ClaimAsync(volume, writingAs, "write it alone", cancellationToken);

    public ValueTask EnsureMayServeAloneAsync(ReplicatedVolume volume, CancellationToken cancellationToken) =>
        _leases.TryGetValue(volume.Id, out var lease) && lease.Valid
            ? ValueTask.CompletedTask
            : ClaimAsync(volume, volume.Replica.Generation, "serve it alone (its data may be stale)", cancellationToken);

    /// <summary>Asks the witness for the vote, as the data set <paramref name="writingAs"/>; throws unless it is granted.</summary>
    private async ValueTask ClaimAsync(ReplicatedVolume volume, GenerationIds writingAs, string what, CancellationToken cancellationToken)
    {
        var answer = await SharedClaim(volume, writingAs).WaitAsync(cancellationToken);
        if (answer is not { Granted: true })
        {
            throw new BlockDeviceException(StorageError.NotPermitted,
                $"volume '{volume.Name}' lost its peer and this node may not {what}: {answer?.Reason ?? $"the witness at {Address} cannot be reached"}");
        }
    }

    /// <summary>
    /// The request for the vote that every write waiting for it shares: when the peer is lost, the
    /// writes in flight (a queue depth's worth) all need the vote at once, and one request answers them
    /// all, instead of one request (and, on a cold connection, one TLS handshake) each within the time a
    /// write alone waits. It runs on the quorum's own token: one writer giving up does not cancel it for the others.
    /// </summary>
    private Task<VoteAnswer?> SharedClaim(ReplicatedVolume volume, GenerationIds writingAs)
    {
        var key = (volume.Id, writingAs);
        return _claims.GetOrAdd(key, _ => new Lazy<Task<VoteAnswer?>>(() => ClaimOnceAsync(key, volume, writingAs))).Value;
    }

    private async Task<VoteAnswer?> ClaimOnceAsync((Guid, GenerationIds) key, ReplicatedVolume volume, GenerationIds writingAs)
    {
        try
        {
            return await RequestAsync(volume, writingAs, _stop.Token);
        }
        finally
        {
            _claims.TryRemove(key, out _);
        }
    }

    /// <summary>The volume is paired and in sync again: give the vote back (in the background).</summary>
    public void Release(ReplicatedVolume volume) => _ = ReleaseAsync(volume);

    private async Task ReleaseAsync(ReplicatedVolume volume)
    {
        _leases.TryRemove(volume.Id, out _);
        try
        {
            using var response = await _http.PostAsJsonAsync($"/api/v1/votes/{volume.Id}/release",
                new ReleaseRequest(_node, Hex(volume.Replica.Generation.Current)), NodeConfig.JsonOptions);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            LogReleaseFailed(volume.Name, e.Message);
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _renewals.Wait(TimeSpan.FromSeconds(5));
        _http.Dispose();
        _stop.Dispose();
    }

    private async Task<VoteAnswer?> RequestAsync(ReplicatedVolume volume, GenerationIds writingAs, CancellationToken ct)
    {
        var sent = Stopwatch.GetTimestamp();
        try
        {
            var ids = volume.Replica.Generation;
            using var response = await _http.PostAsJsonAsync($"/api/v1/votes/{volume.Id}",
                new VoteRequest(_node, Hex(ids.Current), Hex(writingAs.Current), Hex(ids.Bitmap)), NodeConfig.JsonOptions, ct);
            if (response.StatusCode == System.Net.HttpStatusCode.Forbidden)
            {
                LogForbidden(volume.Name, await response.Content.ReadAsStringAsync(ct));
                _leases.TryRemove(volume.Id, out _);
                return null;
            }

            var answer = await response.Content.ReadFromJsonAsync<VoteAnswer>(NodeConfig.JsonOptions, ct);
            if (answer is { Granted: true })
            {
                var valid = TimeSpan.FromSeconds(answer.LeaseSeconds) - Margin;
                var fresh = !_leases.ContainsKey(volume.Id);
                _leases[volume.Id] = new Lease(volume, writingAs, sent + (long)(valid.TotalSeconds * Stopwatch.Frequency));
                if (fresh)
                {
                    LogGranted(volume.Name, answer.Reason);
                }
            }
            else if (answer is not null)
            {
                _leases.TryRemove(volume.Id, out _);
                LogRefused(volume.Name, answer.Reason);
            }

            return answer;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException)
        {
            LogUnreachable(volume.Name, Address, e.Message);
            return null;
        }
    }

    /// <summary>
    /// Each second: renews every held lease while its volume writes without its peer (unpaired, or paired with
    /// a peer whose disk is detached), and checks the unpaired
    /// volumes this node does not hold: when the witness says the other node wrote alone as a newer
    /// data set, this replica is outdated and stops serving reads, which would be stale.
    /// </summary>
    /// <remarks>
    /// Every <see cref="KeepWarmTicks"/> seconds without anything else to ask, it reads the votes anyway:
    /// the connection to the witness is a mutual TLS session, and keeping one open means the claim
    /// made when the peer is lost costs one request, not a TLS handshake on a loaded host, within the
    /// <see cref="RequestTimeout"/> a write alone waits for.
    /// </remarks>
    private async Task RenewLoopAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        var idle = 0;
        while (await WaitAsync(timer, ct))
        {
            var asked = false;
            foreach (var lease in _leases.Values)
            {
                if (!lease.Volume.WritesWithoutPeer)
                {
                    continue;
                }

                await RequestAsync(lease.Volume, lease.Volume.Replica.Generation, ct);
                asked = true;
            }

            asked |= await CheckStandingAsync(ct);
            idle = asked ? 0 : idle + 1;
            if (idle >= KeepWarmTicks)
            {
                idle = 0;
                await ReadVotesAsync(ct);
            }
        }
    }

    /// <summary>Checks the standing of the unpaired volumes this node holds no vote for; whether it asked the witness.</summary>
    private async Task<bool> CheckStandingAsync(CancellationToken ct)
    {
        IReadOnlyList<ReplicatedVolume> volumes;
        try
        {
            volumes = _volumes?.Invoke() ?? [];
        }
        catch (ObjectDisposedException)
        {
            // The node is stopping: its services are disposed (the volumes' owner before this one,
            // which it depends on) while this round runs. Nothing left to check.
            return false;
        }

        var unpaired = volumes.Where(v => v.Session is null && v.Replica.IsUpToDate && !_leases.ContainsKey(v.Id)).ToList();
        if (unpaired.Count == 0)
        {
            return false;
        }

        var votes = await ReadVotesAsync(ct);

        foreach (var volume in unpaired)
        {
            var vote = votes?.FirstOrDefault(v => v.Volume == volume.Id);
            // The volume may have paired while the witness answered: a resync target is inconsistent, not outdated.
            if (vote is not null && vote.Holder != _node && vote.Generation != Hex(volume.Replica.Generation.Current)
                && volume.Session is null && volume.Replica.TryChangeDiskState(ReplicaDiskState.UpToDate, ReplicaDiskState.Outdated))
            {
                LogOutdated(volume.Name, vote.Holder);
            }
        }

        return true;
    }

    /// <summary>The witness's votes; null when it cannot be asked now.</summary>
    private async Task<List<VoteInfo>?> ReadVotesAsync(CancellationToken ct)
    {
        try
        {
            return await _http.GetFromJsonAsync<List<VoteInfo>>("/api/v1/votes", NodeConfig.JsonOptions, ct);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException)
        {
            return null;
        }
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken ct)
    {
        try
        {
            return await timer.WaitForNextTickAsync(ct);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static string Hex(ulong value) => value.ToString("X16", CultureInfo.InvariantCulture);

    private sealed record Lease(ReplicatedVolume Volume, GenerationIds WritingAs, long ValidUntil)
    {
        public bool Valid => Stopwatch.GetTimestamp() < ValidUntil;

        public bool Covers(GenerationIds writingAs) => writingAs == WritingAs && Valid;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Volume}: the witness granted this node the vote ({Reason}); it serves the volume alone")]
    private partial void LogGranted(string volume, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Volume}: the witness refused this node the vote: {Reason}; its reads and writes are refused until the peer is back")]
    private partial void LogRefused(string volume, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Volume}: the witness at {Address} cannot be reached ({Reason}); writes alone are refused")]
    private partial void LogUnreachable(string volume, string address, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Volume}: node {Holder} writes alone with the witness's vote; this replica is outdated and serves no reads until it resyncs")]
    private partial void LogOutdated(string volume, string holder);

    [LoggerMessage(Level = LogLevel.Error, Message = "Volume {Volume}: the witness refused this node's request: {Problem}")]
    private partial void LogForbidden(string volume, string problem);

    [LoggerMessage(Level = LogLevel.Error, Message = "The witness at {Address} is not trusted: {Reason}; writes alone are refused")]
    private partial void LogWitnessRefused(string address, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Volume {Volume}: releasing the witness vote failed ({Reason}); it expires on its own")]
    private partial void LogReleaseFailed(string volume, string reason);
}

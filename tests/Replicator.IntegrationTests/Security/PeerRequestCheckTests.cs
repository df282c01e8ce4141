using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Replicator.IntegrationTests.Harness;
using Replicator.IntegrationTests.SingleNode;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;
using Replicator.Protocol.Security;

namespace Replicator.IntegrationTests.Security;

/// <summary>
/// Node b against requests of a peer that authenticated (this test, with node a's own certificate,
/// while a is stopped) but does not follow the pairing: each is refused, logged and counted, and
/// b's replica is exactly as it was.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class PeerRequestCheckTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Requests_that_do_not_fit_the_pairing_are_refused_counted_and_change_nothing()
    {
        await using var cluster = await TestCluster.StartAsync(null, "--no-witness");
        await RealClientTests.QemuIo(cluster.Uri("a", "vol0"), "write -P 0x61 0 1M");
        using var volume = await cluster.GetJsonAsync("b", "/api/v1/volumes/vol0");
        var id = volume.RootElement.GetProperty("id").GetString()!;
        await cluster.StopAsync("a");
        await TestCluster.WaitUntilAsync(async () => !(await cluster.PeerAsync("b")).GetProperty("connected").GetBoolean(), Wait, "b did not notice a stopped");

        await using (var impostor = await ConnectAsNodeAAsync(cluster))
        {
            var refusals = new (Envelope Request, byte[] Payload, ReplyStatus Status, string Phrase)[]
            {
                (new Envelope { Write = new WriteRequest { VolumeId = id, Offset = 0, Length = 4096, Kind = WriteKind.Replicate } }, new byte[4096],
                    ReplyStatus.NotPermitted, "is not paired with a on this connection"),
                (new Envelope { Write = new WriteRequest { VolumeId = id, Offset = 0, Length = 4096, Kind = WriteKind.Resync } }, new byte[4096],
                    ReplyStatus.NotPermitted, "a resync write would change this replica outside the pairing"),
                (new Envelope { ResyncComplete = new ResyncCompleteRequest { VolumeId = id } }, [], ReplyStatus.NotPermitted, "a resync from a cannot have completed"),
                (new Envelope { RegionChecksums = new RegionChecksumRequest { VolumeId = id, Length = 1 << 20, RegionSize = 512 } }, [],
                    ReplyStatus.Invalid, "a checksum region of 512 bytes"),
                (new Envelope { VolumeCreate = new VolumeCreateRequest { Volume = new VolumeDescriptor { VolumeId = Guid.NewGuid().ToString(), Name = "huge", Size = 1UL << 62 } } }, [],
                    ReplyStatus.Invalid, "larger than this node allows"),
                (new Envelope { VolumeResize = new VolumeResizeRequest { VolumeId = id, Size = 1UL << 62 } }, [], ReplyStatus.Invalid, "larger than this node allows"),
                (new Envelope { DiscardReplica = new DiscardReplicaRequest { VolumeId = id } }, [], ReplyStatus.Invalid, "is not in split brain"),
            };
            foreach (var (request, payload, status, phrase) in refusals)
            {
                using var reply = await impostor.SendRequestAsync(request, payload).WaitAsync(Wait);
                Assert.Equal(status, reply.Status);
                Assert.Contains(phrase, reply.Message, StringComparison.Ordinal);
            }

            Assert.Null(impostor.End);
        }

        var peer = await cluster.PeerAsync("b");
        Assert.True(peer.GetProperty("refusedRequests").GetInt64() >= 7, peer.ToString());
        Assert.Contains("is not in split brain", peer.GetProperty("lastRefusedRequest").GetString(), StringComparison.Ordinal);
        var log = await File.ReadAllTextAsync(Path.Combine(cluster.DataDir("b"), "node.log"));
        Assert.Contains("Refused Write request", log, StringComparison.Ordinal);
        using var metrics = new StringReader(await cluster.GetTextAsync(new Uri(cluster.Admin("b"), "/metrics")));
        Assert.Contains(ReadLines(metrics), l => l.StartsWith("replicator_peer_requests_refused", StringComparison.Ordinal) && !l.EndsWith(" 0", StringComparison.Ordinal));

        // Nothing was created, and once a is back the replicas still match: no write slipped in.
        using (var volumes = await cluster.GetJsonAsync("b", "/api/v1/volumes"))
        {
            Assert.Equal(["vol0"], volumes.RootElement.EnumerateArray().Select(v => v.GetProperty("name").GetString()));
        }

        await cluster.RestartAsync("a");
        await cluster.WaitInSyncAsync("vol0");
        await RealClientTests.QemuIo(cluster.Uri("b", "vol0"), "read -P 0x61 0 1M");
        Assert.Equal(0, await cluster.VerifyAsync("vol0"));
    }

    [Fact]
    public async Task A_peer_announcing_a_volume_beyond_max_volume_size_is_refused_at_the_handshake_and_the_node_still_starts()
    {
        await using var cluster = await TestCluster.StartAsync(null, "--no-witness");
        await cluster.StopAsync("a");
        await TestCluster.WaitUntilAsync(async () => !(await cluster.PeerAsync("b")).GetProperty("connected").GetBoolean(), Wait, "b did not notice a stopped");
        var huge = new VolumeDescriptor { VolumeId = Guid.NewGuid().ToString(), Name = "huge", Size = 1UL << 62, AllocationUnit = 65536 };

        var refused = await Assert.ThrowsAsync<PeerHandshakeException>(() => ConnectAsNodeAAsync(cluster, [huge]));

        Assert.Equal(PeerHandshakeFailure.RefusedByPeer, refused.Failure);
        Assert.Contains("announces its volume 'huge'", refused.Message, StringComparison.Ordinal);
        Assert.Contains("larger than this node allows", refused.Message, StringComparison.Ordinal);
        await cluster.StopAsync("b");
        await cluster.RestartAsync("b");
        await cluster.RestartAsync("a");
        await cluster.WaitInSyncAsync("vol0");
        using var volumes = await cluster.GetJsonAsync("b", "/api/v1/volumes");
        Assert.Equal(["vol0"], volumes.RootElement.EnumerateArray().Select(v => v.GetProperty("name").GetString()));
    }

    /// <summary>Authenticates to node b with node a's certificate and Hello (its volumes: <paramref name="volumes"/>), and starts a connection that answers every request OK.</summary>
    private static async Task<PeerConnection> ConnectAsNodeAAsync(TestCluster cluster, VolumeDescriptor[]? volumes = null)
    {
        using var config = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(cluster.DataDir("a"), "node.json")));
        var a = config.RootElement;
        var peer = a.GetProperty("peer");
        var credentials = new TlsDirectory(cluster.NodeTlsDirectory("a"));
        var security = new PeerLinkSecurity(credentials, new ClusterTrust(a.GetProperty("clusterId").GetGuid(), () => credentials.Load().Authorities, new RevocationList(cluster.RevocationList())),
            "b", peer.GetProperty("nodeId").GetGuid(), WantEncryption: false);
        var socket = await ClusterPki.ConnectAsync(cluster.Manifest.GetProperty("nodes").EnumerateArray().First(n => n.GetProperty("name").GetString() == "b").GetProperty("peer").GetString()!);
        var hello = PeerHandshake.CreateHello(new PeerIdentity(a.GetProperty("clusterId").GetGuid(), a.GetProperty("nodeId").GetGuid(), "a"), volumes ?? []);
        var peerOfB = await PeerSecureHandshake.RunAsync(socket, dialed: true, security, () => hello, PeerHandshake.DefaultTimeout, NullLogger.Instance);
        var connection = new PeerConnection(peerOfB.Transport, new AnswersOk(), PeerConnectionOptions.Default, NullLogger.Instance, "b");
        connection.Start();
        return connection;
    }

    private static IEnumerable<string> ReadLines(StringReader reader)
    {
        while (reader.ReadLine() is { } line)
        {
            yield return line;
        }
    }

    private sealed class AnswersOk : IPeerRequestHandler
    {
        public async ValueTask HandleAsync(PeerIncomingRequest request, CancellationToken cancellationToken) => await request.ReplyAsync(ReplyStatus.Ok);
    }
}

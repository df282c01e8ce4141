using System.Net.Sockets;
using System.Text.Json;
using Replicator.Node.Security;
using Replicator.Protocol.Security;

namespace Replicator.IntegrationTests.Harness;

/// <summary>
/// The certificates <c>cluster up</c> made for a test's cluster, as the test uses them: to speak to the
/// witness as a node or as the administrator, to read a node's serial, to revoke and renew with the CLI.
/// </summary>
public static class ClusterPki
{
    public static string AuthorityDirectory(this TestCluster cluster) => Path.Combine(cluster.Directory, "tls", "ca");

    public static string RevocationList(this TestCluster cluster) => Path.Combine(cluster.Directory, "tls", "revoked.json");

    public static string NodeTlsDirectory(this TestCluster cluster, string node) => Path.Combine(cluster.DataDir(node), "tls");

    /// <summary>The serial number of the certificate in a holder directory, as <c>replicator cert show --json</c> prints it.</summary>
    public static async Task<string> SerialAsync(string holderDirectory)
    {
        var shown = await ReplicatorProcess.RunAsync(["cert", "show", holderDirectory, "--json"]);
        Assert.True(shown.ExitCode == 0, shown.Describe());
        using var json = JsonDocument.Parse(shown.Stdout);
        return json.RootElement.GetProperty("serial").GetString()!;
    }

    /// <summary>An HTTPS client of the cluster's witness that presents the certificate in <paramref name="holderDirectory"/>.</summary>
    internal static HttpClient WitnessClient(this TestCluster cluster, string holderDirectory, bool client = false)
    {
        var credentials = new TlsDirectory(holderDirectory, client);
        var trust = new ClusterTrust(credentials.Load().Identity.ClusterId, () => credentials.Load().Authorities, new RevocationList(cluster.RevocationList()));
        return ClusterHttps.CreateClient(new Uri($"https://{cluster.Manifest.GetProperty("witness").GetProperty("address").GetString()}"),
            credentials, trust, IdentityRole.Witness, TimeSpan.FromSeconds(10));
    }

    /// <summary>The peer section of a node as its admin API reports it (<c>GET /api/v1/node</c>).</summary>
    public static async Task<JsonElement> PeerAsync(this TestCluster cluster, string node)
    {
        using var json = await cluster.GetJsonAsync(node, "/api/v1/node");
        return json.RootElement.GetProperty("peer").Clone();
    }

    /// <summary>Opens a TCP connection to <paramref name="address"/> (host:port).</summary>
    public static async Task<Socket> ConnectAsync(string address)
    {
        var endPoint = System.Net.IPEndPoint.Parse(address);
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endPoint).WaitAsync(TimeSpan.FromSeconds(10));
        return socket;
    }
}

using Microsoft.Extensions.Logging.Abstractions;
using Replicator.Core.Replication;
using Replicator.Node.Configuration;
using Replicator.Node.Security;
using Replicator.Node.Witness;
using Replicator.Protocol.Security;

namespace Replicator.Node.Tests.Witness;

/// <summary>The node's side of the witness, without a witness: what it does when the node around it stops.</summary>
public sealed class WitnessQuorumTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("witness-quorum-").FullName;

    [Fact]
    public async Task Stopping_while_a_round_asks_for_the_volumes_of_a_node_already_disposed_is_no_crash()
    {
        var config = NodeWithCertificate();
        var asked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var quorum = new WitnessQuorum(config, NodeSecurity.Load(config, _directory)!, NullLogger<WitnessQuorum>.Instance, () =>
        {
            asked.TrySetResult();
            throw new ObjectDisposedException("IServiceProvider");
        });

        await asked.Task.WaitAsync(TimeSpan.FromSeconds(30));

        var disposed = Record.Exception(quorum.Dispose);
        Assert.Null(disposed);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    /// <summary>A node configuration with a witness (nobody listens there) and the node's certificate in place.</summary>
    private NodeConfig NodeWithCertificate()
    {
        var config = new NodeConfig
        {
            Name = "a",
            NodeId = Guid.NewGuid(),
            ClusterId = Guid.NewGuid(),
            Witness = new WitnessConfig { Address = "127.0.0.1:9" },
        };
        using var authority = CertificateIssuer.CreateAuthority(config.ClusterId);
        using var certificate = CertificateIssuer.Issue(authority, new ClusterIdentity(IdentityRole.Node, "a", config.NodeId, config.ClusterId));
        TlsDirectory.Write(config.Tls.DirectoryPath(_directory), client: false, certificate, [System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificate(authority.RawData)]);
        return config;
    }
}

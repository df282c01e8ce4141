using System.IO.Pipelines;
using Microsoft.Extensions.Logging;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Peer;

/// <summary>What the handshake learned about the peer.</summary>
/// <param name="Peer">The peer's checked identity.</param>
/// <param name="Hello">The peer's Hello as sent, with its volumes and protocol minor version.</param>
internal sealed record PeerHandshakeResult(PeerIdentity Peer, Hello Hello);

/// <summary>
/// Sets up a peer connection: the same exchange runs on the dialing and the accepting side.
/// </summary>
/// <remarks>
/// <code>
///   this node                          peer
///   Hello (version, cluster, node, volumes) ──▶   (both sides send at once)
///                                    ◀── Hello
///   check the peer's Hello             check ours
///   HelloAccepted or Refused{reason} ──▶
///                                    ◀── HelloAccepted or Refused{reason}
/// </code>
/// Each side refuses a peer with another protocol major version, another cluster id, its own
/// node id, or (over TLS) a node other than the one its certificate proved, and says why in
/// Refused before it gives up, so the operator reads the same
/// reason in the logs of both nodes. The connection carries requests only after both sides
/// accepted. The whole exchange is bounded by a timeout. Reconciling the volumes is up to the
/// caller: the handshake only carries the descriptors.
/// </remarks>
internal static partial class PeerHandshake
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(5);

    /// <summary>How long a refusing node waits for the peer's verdict before it hangs up.</summary>
    private static readonly TimeSpan VerdictDrainLimit = TimeSpan.FromSeconds(1);

    /// <summary>The Hello this node sends: its identity and volumes, at this build's protocol version.</summary>
    public static Hello CreateHello(PeerIdentity local, IEnumerable<VolumeDescriptor> volumes)
    {
        var hello = new Hello
        {
            ProtocolMajor = PeerWire.ProtocolMajor,
            ProtocolMinor = PeerWire.ProtocolMinor,
            ClusterId = local.ClusterId.ToString(),
            NodeId = local.NodeId.ToString(),
            NodeName = local.NodeName,
        };
        hello.Volumes.AddRange(volumes);
        return hello;
    }

    /// <summary>Runs the handshake over <paramref name="transport"/>; on success the caller starts a <see cref="PeerConnection"/> on it.</summary>
    /// <param name="transport">A fresh connection to the peer.</param>
    /// <param name="localHello">This node's Hello (<see cref="CreateHello"/>).</param>
    /// <param name="peerAddress">Where the peer is, for messages.</param>
    /// <param name="timeout">Bound on the whole exchange.</param>
    /// <param name="logger">Logs refusals.</param>
    /// <param name="cancellationToken">Abandons the handshake.</param>
    /// <param name="certified">Who the peer's certificate proved it is (<see cref="PeerSecureHandshake"/>); its Hello must name the same node.</param>
    /// <param name="checkPeer">The caller's own check of the peer's Hello, after the protocol's: why this node refuses it, or null.</param>
    /// <exception cref="PeerHandshakeException">Refused by either side, timed out, or a protocol error; the message says which and why.</exception>
    public static async Task<PeerHandshakeResult> RunAsync(
        IDuplexPipe transport,
        Hello localHello,
        string peerAddress,
        TimeSpan timeout,
        ILogger logger,
        CancellationToken cancellationToken = default,
        PeerIdentity? certified = null,
        Func<Hello, string?>? checkPeer = null)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        var channel = new HandshakeChannel(transport, deadline.Token);
        try
        {
            await channel.SendAsync(new Envelope { Hello = localHello });
            var peerHello = await ReceiveHelloAsync(channel, peerAddress, logger);

            var refusal = PeerHelloValidator.FindRefusal(localHello, peerHello, peerAddress, out var peer, certified) ?? checkPeer?.Invoke(peerHello);
            if (refusal is not null)
            {
                Log.RefusedPeer(logger, peerAddress, refusal);
                await channel.SendAsync(new Envelope { Refused = new Refused { Reason = refusal } });
                await channel.DrainVerdictAsync(VerdictDrainLimit);
                throw new PeerHandshakeException(PeerHandshakeFailure.RefusedByThisNode, $"This node refused peer {peerAddress}: {refusal}");
            }

            await channel.SendAsync(new Envelope { HelloAccepted = new HelloAccepted() });
            var verdict = await channel.ReceiveAsync();
            switch (verdict.BodyCase)
            {
                case Envelope.BodyOneofCase.HelloAccepted:
                    Log.Paired(logger, peer!.ToString(), peerAddress, peerHello.ProtocolMajor, peerHello.ProtocolMinor, peerHello.Volumes.Count);
                    return new PeerHandshakeResult(peer, peerHello);
                case Envelope.BodyOneofCase.Refused:
                    throw RefusedByPeer(logger, peerAddress, verdict.Refused.Reason);
                default:
                    throw Unexpected(peerAddress, "HelloAccepted or Refused", verdict);
            }
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new PeerHandshakeException(
                PeerHandshakeFailure.TimedOut,
                $"Peer {peerAddress} did not complete the handshake within {timeout.TotalSeconds:0.###} s: it is not a Replicator node, or it is hung.");
        }
        catch (PeerProtocolException exception)
        {
            throw new PeerHandshakeException(PeerHandshakeFailure.ProtocolError, $"Handshake with peer {peerAddress} failed: {exception.Message}", exception);
        }
        catch (IOException exception) when (exception is not PeerHandshakeException)
        {
            throw new PeerHandshakeException(PeerHandshakeFailure.ConnectionLost, $"The connection to peer {peerAddress} failed during the handshake: {exception.Message}", exception);
        }
    }

    private static async Task<Hello> ReceiveHelloAsync(HandshakeChannel channel, string peerAddress, ILogger logger)
    {
        var first = await channel.ReceiveAsync();
        return first.BodyCase switch
        {
            Envelope.BodyOneofCase.Hello => first.Hello,
            Envelope.BodyOneofCase.Refused => throw RefusedByPeer(logger, peerAddress, first.Refused.Reason),
            _ => throw Unexpected(peerAddress, "Hello", first),
        };
    }

    private static PeerHandshakeException RefusedByPeer(ILogger logger, string peerAddress, string reason)
    {
        Log.RefusedByPeer(logger, peerAddress, reason);
        return new PeerHandshakeException(PeerHandshakeFailure.RefusedByPeer, $"Peer {peerAddress} refused this node: {reason}");
    }

    private static PeerHandshakeException Unexpected(string peerAddress, string expected, Envelope received)
        => new(PeerHandshakeFailure.ProtocolError, $"Handshake with peer {peerAddress} failed: expected {expected}, received {received.BodyCase}.");

    private static partial class Log
    {
        [LoggerMessage(20, LogLevel.Information, "Paired with peer {Peer} at {Address} (peer protocol {Major}.{Minor}, {VolumeCount} volumes)")]
        public static partial void Paired(ILogger logger, string peer, string address, uint major, uint minor, int volumeCount);

        [LoggerMessage(21, LogLevel.Error, "Refused peer {Address}: {Reason}")]
        public static partial void RefusedPeer(ILogger logger, string address, string reason);

        [LoggerMessage(22, LogLevel.Error, "Peer {Address} refused this node: {Reason}")]
        public static partial void RefusedByPeer(ILogger logger, string address, string reason);
    }
}

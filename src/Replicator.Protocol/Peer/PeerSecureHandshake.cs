using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using Microsoft.Extensions.Logging;
using Replicator.Protocol.Peer.Messages;
using Replicator.Protocol.Security;

namespace Replicator.Protocol.Peer;

/// <summary>What this node needs to authenticate its peer, and whether it wants the link encrypted.</summary>
/// <param name="Credentials">This node's certificate, key and the cluster's authority.</param>
/// <param name="Trust">Checks the peer's certificate.</param>
/// <param name="PeerName">The configured peer's name; its certificate must carry it.</param>
/// <param name="PeerNodeId">The configured peer's id; its certificate must carry it.</param>
/// <param name="WantEncryption">Whether this node asks for encryption; the link is encrypted when either node asks.</param>
internal sealed record PeerLinkSecurity(TlsDirectory Credentials, ClusterTrust Trust, string PeerName, Guid PeerNodeId, bool WantEncryption)
{
    /// <summary>The node's own check of the peer's Hello (the volumes it announces, say): why it refuses the peer, or null.</summary>
    public Func<Hello, string?>? CheckPeerHello { get; init; }
}

/// <summary>A peer that proved who it is, and the transport to run the connection on.</summary>
/// <param name="Handshake">The peer's Hello, checked.</param>
/// <param name="LocalHello">The Hello this node sent.</param>
/// <param name="Transport">TLS when <paramref name="Encrypted"/>, else the bare socket.</param>
/// <param name="Certificate">The identity the peer's certificate proves.</param>
/// <param name="Serial">The peer certificate's serial number (what a revocation names).</param>
internal sealed record AuthenticatedPeer(PeerHandshakeResult Handshake, Hello LocalHello, IPeerTransport Transport, ClusterIdentity Certificate, string Serial, bool Encrypted);

/// <summary>
/// Sets up a peer connection so that nothing the other side sends is read as a peer message
/// before it has proven, with a certificate of the cluster's authority, that it is the configured
/// peer; then runs <see cref="PeerHandshake"/> inside TLS and leaves the connection encrypted or, when
/// neither node asks for encryption, hands the socket back for raw use.
/// </summary>
/// <remarks>
/// <code>
///   dialer (TLS client)                     listener (TLS server)
///   ── TLS 1.3 handshake, both present a certificate; each checks the other's (ClusterTrust):
///      chains to the cluster's authority, names the configured peer (name and id), not revoked ──
///   Hello{…, encrypt}  ──TLS──▶            ◀──TLS── Hello{…, encrypt}
///   HelloAccepted      ──TLS──▶            ◀──TLS── HelloAccepted      (the last TLS records)
///   encrypt = either Hello asked for it
///   encrypted: the connection runs on the TLS stream
///   plain:     both switch to the bare socket; the next byte each sends is a raw peer frame
/// </code>
/// <para><b>Why authentication always uses TLS, even for a link left unencrypted.</b> One handshake,
/// done by the BCL and OpenSSL, proves both identities with the same certificates an encrypted link
/// uses; there is no second, hand-made authentication protocol to get right. The switch to the bare
/// socket is safe because (1) each side's last TLS record is its HelloAccepted, flushed before it
/// reads the other's, and neither sends anything over TLS after it (session tickets come before the
/// first Hello, and resumption is off); (2) reads of the TLS layer stop at record boundaries
/// (<see cref="TlsHandoffStream"/>), so reading the peer's HelloAccepted never takes in the raw bytes
/// the peer sends right after it; (3) after the switch the TLS layer is cut off from the socket, so
/// not even a close_notify can slip into the raw stream. A side that finds TLS bytes still buffered
/// after the other's HelloAccepted refuses the connection instead of guessing.</para>
/// <para><b>What an attacker on the wire can do when encryption is off.</b> A passive one reads every
/// block. An active one cannot pair with either node (it holds no certificate of the cluster), but
/// it can take over or alter the TCP stream after the handshake: inject forged writes (with a valid
/// XXH3 checksum, which is no MAC), change or drop frames, or cut the link. So encryption off is
/// only for a dedicated back-to-back cable between the two hosts, as DRBD and HAST without their
/// encryption are; everywhere else the link stays encrypted, which TLS also protects from tampering.</para>
/// <para>The whole exchange, TLS included, is bounded by one timeout, so a connection that sends
/// nothing, or garbage, ties up its slot for at most that long.</para>
/// </remarks>
internal static partial class PeerSecureHandshake
{
    /// <summary>Authenticates the peer over <paramref name="socket"/> and runs the Hello exchange; on success the caller owns the returned transport (and with it the socket).</summary>
    /// <param name="socket">A fresh connection; disposed here when the handshake fails.</param>
    /// <param name="dialed">Whether this node dialed (it is then the TLS client).</param>
    /// <param name="security">Credentials, trust and the expected peer.</param>
    /// <param name="createHello">This node's Hello, made once the peer is authenticated (so its volume list is current).</param>
    /// <param name="timeout">Bound on the whole exchange.</param>
    /// <param name="logger">Receives the Hello exchange's log lines.</param>
    /// <param name="cancellationToken">Abandons the handshake.</param>
    /// <exception cref="PeerHandshakeException">Not authenticated, refused, timed out or broken; the message says which and why.</exception>
    public static async Task<AuthenticatedPeer> RunAsync(
        Socket socket,
        bool dialed,
        PeerLinkSecurity security,
        Func<Hello> createHello,
        TimeSpan timeout,
        ILogger logger,
        CancellationToken cancellationToken = default)
    {
        var address = socket.RemoteEndPoint?.ToString() ?? "an unknown address";
        var handoff = new TlsHandoffStream(socket);
        var tls = new SslStream(handoff, leaveInnerStreamOpen: false);
        var handedOver = false;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            var verdict = await AuthenticateAsync(tls, dialed, security, address, timeout, deadline.Token, cancellationToken);
            var (input, output) = PeerTlsTransport.PipesOver(tls);
            var pipes = new DuplexPipe(input, output);
            var hello = createHello();
            hello.Encrypt = security.WantEncryption;
            var certified = new PeerIdentity(security.Trust.ClusterId, verdict.Identity!.Id, verdict.Identity.Name);
            var handshake = await PeerHandshake.RunAsync(pipes, hello, address, timeout, logger, deadline.Token, certified, security.CheckPeerHello);
            var encrypted = hello.Encrypt || handshake.Hello.Encrypt;
            IPeerTransport transport;
            if (encrypted)
            {
                handoff.StopLimiting();
                transport = new PeerTlsTransport(socket, tls, input, output);
            }
            else
            {
                if (input.TryRead(out var leftover) && !leftover.Buffer.IsEmpty || !handoff.AtRecordBoundary)
                {
                    throw new PeerHandshakeException(PeerHandshakeFailure.ProtocolError,
                        $"Peer {address} sent more over TLS after its HelloAccepted, where the link switches to the bare socket; refusing the connection.");
                }

                handoff.Detach();
                await tls.DisposeAsync();
                transport = PeerSocketTransport.Create(socket);
            }

            handedOver = true;
            return new AuthenticatedPeer(handshake, hello, transport, verdict.Identity, verdict.Serial!, encrypted);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new PeerHandshakeException(PeerHandshakeFailure.TimedOut,
                $"Connection from {address} did not authenticate and complete the handshake within {timeout.TotalSeconds:0.###} s: it is not a Replicator node, or it is hung.");
        }
        catch (PeerHandshakeException exception) when (EndedInsideTls(exception))
        {
            throw RefusedAfterTls(address, exception.InnerException!);
        }
        catch (AuthenticationException exception)
        {
            throw RefusedAfterTls(address, exception);
        }
        catch (Exception exception) when (exception is (IOException or System.Net.Sockets.SocketException or ObjectDisposedException) and not PeerHandshakeException)
        {
            throw new PeerHandshakeException(PeerHandshakeFailure.ConnectionLost, $"The connection {(dialed ? "to" : "from")} {address} failed during the handshake: {Describe(exception)}", exception);
        }
        finally
        {
            if (!handedOver)
            {
                await tls.DisposeAsync();
                socket.Dispose();
            }
        }
    }

    /// <summary>The TLS handshake; returns the verdict on the peer's certificate, which is trusted.</summary>
    private static async Task<TrustVerdict> AuthenticateAsync(
        SslStream tls, bool dialed, PeerLinkSecurity security, string address, TimeSpan timeout, CancellationToken deadline, CancellationToken cancellationToken)
    {
        TrustVerdict? verdict = null;
        TlsMaterial own;
        try
        {
            own = security.Credentials.Load();
        }
        catch (TlsSetupException e)
        {
            throw new PeerHandshakeException(PeerHandshakeFailure.NotAuthenticated, $"This node cannot authenticate to peer {address}: {e.Message}", e);
        }

        var requirement = IdentityRequirement.Node(dialed ? TlsSide.Server : TlsSide.Client, security.PeerName, security.PeerNodeId);
        try
        {
            if (dialed)
            {
                await tls.AuthenticateAsClientAsync(ClusterTlsOptions.ForClient(own, security.Trust, requirement, v => verdict = v, security.PeerName), deadline);
            }
            else
            {
                await tls.AuthenticateAsServerAsync(ClusterTlsOptions.ForServer(own, security.Trust, requirement, v => verdict = v), deadline);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new PeerHandshakeException(PeerHandshakeFailure.TimedOut,
                $"Connection {(dialed ? "to" : "from")} {address} did not complete a TLS handshake within {timeout.TotalSeconds:0.###} s: it is not a Replicator node, or it is hung.");
        }
        catch (Exception e) when (e is AuthenticationException or IOException or System.Net.Sockets.SocketException)
        {
            if (verdict is { Trusted: false } refused)
            {
                throw new PeerHandshakeException(PeerHandshakeFailure.NotAuthenticated, $"This node refused {(dialed ? "peer" : "a connection from")} {address}: {refused.Problem}", e);
            }

            throw new PeerHandshakeException(PeerHandshakeFailure.NotAuthenticated,
                $"TLS handshake {(dialed ? "with peer" : "with a connection from")} {address} failed before any certificate was accepted: {Describe(e)}", e);
        }

        if (verdict is not { Trusted: true } trusted)
        {
            throw new PeerHandshakeException(PeerHandshakeFailure.NotAuthenticated, $"This node refused {address}: it presented no certificate");
        }

        return trusted;
    }

    /// <summary>Whether the Hello exchange failed because the TLS session under it ended (rather than a refusal or a bad message).</summary>
    private static bool EndedInsideTls(PeerHandshakeException exception) => exception switch
    {
        { Failure: PeerHandshakeFailure.ProtocolError, InnerException: PeerProtocolException { Error: PeerProtocolError.TruncatedFrame } } => true,
        { Failure: PeerHandshakeFailure.ConnectionLost, InnerException: AuthenticationException or IOException } => true,
        _ => false,
    };

    /// <summary>
    /// In TLS 1.3 a client learns that the server refused its certificate only on its first read,
    /// after its own handshake completed: the TLS session ends before the peer's Hello.
    /// </summary>
    private static PeerHandshakeException RefusedAfterTls(string address, Exception exception) =>
        new(PeerHandshakeFailure.NotAuthenticated,
            $"Peer {address} ended the TLS session during the handshake: it most likely refused this node's certificate (its log says why): {Describe(exception)}", exception);

    private static string Describe(Exception exception) =>
        exception.InnerException is { } inner && inner.Message != exception.Message ? $"{exception.Message} ({inner.Message})" : exception.Message;
}

using System.Net.Security;

namespace Replicator.Protocol.Nbd.Client;

/// <summary>Tunables of an NBD client connection; the protocol's numbers live in <see cref="NbdWire"/>.</summary>
internal sealed record NbdClientOptions
{
    /// <summary>
    /// Requests in flight on one connection; more wait for a slot. 128 is what this project's server (and the
    /// Linux nbd driver) allows per connection, so the server never has to stop reading because of this client.
    /// </summary>
    public int MaxInFlightRequests { get; init; } = 128;

    /// <summary>
    /// Asks for block sizes in NBD_OPT_GO, which promises the server that every request honours its minimum block
    /// size. A proxy that forwards its own clients' requests as they come cannot promise that and turns it off;
    /// the sizes are still read when the server sends them unasked.
    /// </summary>
    public bool RequestBlockSizes { get; init; } = true;

    /// <summary>How long connecting and the handshake may take together.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long <see cref="NbdClient.DisconnectAsync"/> waits for the server to answer what is in flight and close.</summary>
    public TimeSpan DisconnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Size of each socket read into the connection's pipe; a 1 MiB READ reply arrives in four.</summary>
    public int ReceiveBufferSize { get; init; } = 256 * 1024;

    /// <summary>Size of the pipe segments requests are written into before they reach the socket.</summary>
    public int SendBufferSize { get; init; } = 256 * 1024;

    /// <summary>
    /// Whether the client upgrades to TLS with NBD_OPT_STARTTLS, sent as the first option: never, when the server
    /// agrees (going on in clear if it refuses, libnbd's <c>tls=allow</c>), or always (giving up if it refuses). An
    /// <c>nbds://</c> URI asks for <see cref="NbdTlsMode.Required"/> whatever this says.
    /// </summary>
    public NbdTlsMode TlsMode { get; init; } = NbdTlsMode.Off;

    /// <summary>
    /// Builds the TLS options for a connection to a host (the name or address the server's certificate must carry):
    /// the CAs trusted and the client's own certificate. <see cref="NbdTls.Client"/> builds them from certificates.
    /// Needed whenever TLS may be used.
    /// </summary>
    public Func<string, SslClientAuthenticationOptions>? TlsAuthentication { get; init; }

    public static NbdClientOptions Default { get; } = new();
}

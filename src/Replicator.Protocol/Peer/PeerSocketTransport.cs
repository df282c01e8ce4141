using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;

namespace Replicator.Protocol.Peer;

/// <summary>
/// A TCP connection to a peer as a duplex pipe, for <see cref="PeerConnection"/>: what an
/// authenticated link without encryption runs on once <see cref="PeerSecureHandshake"/> has handed
/// the socket back from TLS (and what tests run the protocol on directly).
/// </summary>
/// <remarks>
/// The pipes are the BCL's stream adapters over a <see cref="NetworkStream"/>. Completing both
/// (which a <see cref="PeerConnection"/> does when it ends) closes the socket; disposing closes
/// it in any case, failing whatever is still reading or writing.
/// </remarks>
internal sealed class PeerSocketTransport : IPeerTransport
{
    /// <summary>
    /// Reads ask the socket for at least this much room: a 1 MiB write payload arrives in a few
    /// large reads rather than many small ones.
    /// </summary>
    internal const int ReceiveBufferSize = 256 * 1024;
    internal const int MinimumReadSize = 64 * 1024;

    /// <summary>Segments the payload is copied into before a flush sends them.</summary>
    internal const int SendBufferSize = 256 * 1024;

    private readonly NetworkStream _stream;

    private PeerSocketTransport(Socket socket)
    {
        _stream = new NetworkStream(socket, ownsSocket: true);
        Input = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: ReceiveBufferSize, minimumReadSize: MinimumReadSize));
        Output = PipeWriter.Create(_stream, new StreamPipeWriterOptions(minimumBufferSize: SendBufferSize));
        RemoteEndPoint = socket.RemoteEndPoint;
        Name = RemoteEndPoint?.ToString() ?? "an unknown address";
    }

    public PipeReader Input { get; }

    public PipeWriter Output { get; }

    public EndPoint? RemoteEndPoint { get; }

    /// <summary>The remote address, for logs and messages.</summary>
    public string Name { get; }

    /// <summary>Takes over a connected socket (see <see cref="Configure"/>).</summary>
    internal static PeerSocketTransport Create(Socket socket)
    {
        Configure(socket);
        return new PeerSocketTransport(socket);
    }

    /// <summary>
    /// Sets up a peer socket. Nagle is off (a 40-byte reply must not wait for more) and TCP
    /// keepalive is off (the peer protocol pings on its own, far faster). The kernel's socket buffer
    /// sizes are left alone: on Linux setting them switches off autotuning, which grows the buffers
    /// to several MiB on a fast link, more than a fixed size would allow.
    /// </summary>
    internal static void Configure(Socket socket)
    {
        socket.NoDelay = true;
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, false);
    }

    public ValueTask DisposeAsync()
    {
        _stream.Dispose();
        return ValueTask.CompletedTask;
    }
}

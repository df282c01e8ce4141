using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;

namespace Replicator.Protocol.Peer;

/// <summary>A peer connection's bytes, whatever carries them: a bare TCP socket or TLS over one.</summary>
internal interface IPeerTransport : IDuplexPipe, IAsyncDisposable
{
    /// <summary>The remote address, for logs and messages.</summary>
    string Name { get; }
}

/// <summary>
/// An encrypted peer connection: the pipes read and write the <see cref="SslStream"/> that
/// authenticated both nodes (TLS 1.3). Made by <see cref="PeerSecureHandshake"/> when either node
/// asks for encryption.
/// </summary>
/// <remarks>
/// The pipes have the sizes of <see cref="PeerSocketTransport"/>'s, so a 1 MiB write is encrypted
/// in 16 KiB records from a few large buffers. Completing both pipes (a <see cref="PeerConnection"/>
/// does when it ends) disposes the TLS stream, which closes the socket; disposing closes it in any case.
/// </remarks>
internal sealed class PeerTlsTransport : IPeerTransport
{
    private readonly SslStream _tls;
    private readonly Socket _socket;

    public PeerTlsTransport(Socket socket, SslStream tls, PipeReader input, PipeWriter output)
    {
        _socket = socket;
        _tls = tls;
        Input = input;
        Output = output;
        Name = socket.RemoteEndPoint?.ToString() ?? "an unknown address";
    }

    public PipeReader Input { get; }

    public PipeWriter Output { get; }

    public string Name { get; }

    /// <summary>Pipes over <paramref name="tls"/> sized for the peer link's payloads.</summary>
    public static (PipeReader Input, PipeWriter Output) PipesOver(SslStream tls) => (
        PipeReader.Create(tls, new StreamPipeReaderOptions(bufferSize: PeerSocketTransport.ReceiveBufferSize, minimumReadSize: PeerSocketTransport.MinimumReadSize)),
        PipeWriter.Create(tls, new StreamPipeWriterOptions(minimumBufferSize: PeerSocketTransport.SendBufferSize)));

    public async ValueTask DisposeAsync()
    {
        await _tls.DisposeAsync();
        _socket.Dispose();
    }
}

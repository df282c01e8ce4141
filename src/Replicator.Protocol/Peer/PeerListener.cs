using System.Net;
using System.Net.Sockets;

namespace Replicator.Protocol.Peer;

/// <summary>Accepts TCP connections on the peer port.</summary>
internal sealed class PeerListener : IAsyncDisposable
{
    private readonly Socket _socket;

    private PeerListener(Socket socket)
    {
        _socket = socket;
        LocalEndPoint = (IPEndPoint)socket.LocalEndPoint!;
    }

    /// <summary>The address bound, with the actual port when port 0 was asked for.</summary>
    public IPEndPoint LocalEndPoint { get; }

    /// <summary>Binds <paramref name="endPoint"/> and starts listening.</summary>
    /// <exception cref="PeerConnectException">The address cannot be bound (in use, not local).</exception>
    public static PeerListener Start(IPEndPoint endPoint, int backlog = 16)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(endPoint);
            socket.Listen(backlog);
            return new PeerListener(socket);
        }
        catch (SocketException exception)
        {
            socket.Dispose();
            throw new PeerConnectException($"Cannot listen for peers on {endPoint}: {exception.Message} ({exception.SocketErrorCode}).", exception);
        }
    }

    /// <summary>
    /// Waits for the next connection. Whoever it is has proven nothing yet: it goes through
    /// <see cref="PeerSecureHandshake"/> before anything it sends is read as a peer message.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired.</exception>
    /// <exception cref="ObjectDisposedException">The listener was disposed.</exception>
    public async ValueTask<Socket> AcceptAsync(CancellationToken cancellationToken = default)
    {
        var socket = await _socket.AcceptAsync(cancellationToken);
        PeerSocketTransport.Configure(socket);
        return socket;
    }

    public ValueTask DisposeAsync()
    {
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}

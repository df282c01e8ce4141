using System.Net;
using System.Net.Sockets;

namespace Replicator.Protocol.Peer;

/// <summary>Accepts TCP connections from peers.</summary>
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

    /// <summary>Waits for the next peer to connect.</summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired.</exception>
    /// <exception cref="ObjectDisposedException">The listener was disposed.</exception>
    public async ValueTask<PeerSocketTransport> AcceptAsync(CancellationToken cancellationToken = default)
    {
        var socket = await _socket.AcceptAsync(cancellationToken);
        return PeerSocketTransport.Create(socket);
    }

    public ValueTask DisposeAsync()
    {
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}

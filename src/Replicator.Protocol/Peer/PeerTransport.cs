using System.Net;
using System.Net.Sockets;

namespace Replicator.Protocol.Peer;

/// <summary>Dials a peer over TCP.</summary>
internal static class PeerTransport
{
    /// <summary>Connects to the peer at <paramref name="endPoint"/> (an <see cref="IPEndPoint"/> or <see cref="DnsEndPoint"/>).</summary>
    /// <exception cref="PeerConnectException">Refused, unreachable, or not connected within <paramref name="timeout"/>.</exception>
    public static async Task<Socket> ConnectAsync(EndPoint endPoint, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            await socket.ConnectAsync(endPoint, deadline.Token);
            PeerSocketTransport.Configure(socket);
            return socket;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new PeerConnectException($"Connecting to peer {endPoint} timed out after {timeout.TotalSeconds:0.###} s.");
        }
        catch (SocketException exception)
        {
            socket.Dispose();
            throw new PeerConnectException($"Cannot connect to peer {endPoint}: {exception.Message} ({exception.SocketErrorCode}).", exception);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}

/// <summary>A TCP connection to a peer could not be made.</summary>
internal sealed class PeerConnectException(string message, Exception? innerException = null) : IOException(message, innerException);

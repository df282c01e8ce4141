using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Replicator.Protocol.Nbd;

/// <summary>A bound, listening socket for one configured end point.</summary>
internal sealed class NbdListener : IDisposable
{
    private const int Backlog = 512;

    /// <summary>
    /// A Unix socket's mode: its owner and its group may connect (connecting takes write permission), nobody else.
    /// The file mode is what protects an export on a Unix socket, which needs no TLS.
    /// </summary>
    public const UnixFileMode UnixSocketMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite;

    private NbdListener(Socket socket, EndPoint endPoint, string? socketPath)
    {
        Socket = socket;
        EndPoint = endPoint;
        SocketPath = socketPath;
    }

    public Socket Socket { get; }

    /// <summary>The end point actually bound: a TCP port asked for as 0 is the real one here.</summary>
    public EndPoint EndPoint { get; }

    /// <summary>The socket file of a Unix listener, removed again when the listener is disposed.</summary>
    public string? SocketPath { get; }

    public bool IsTcp => Socket.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6;

    /// <summary>
    /// Binds and listens: TCP on an <see cref="IPEndPoint"/>, or a Unix socket whose stale file is replaced. A Unix
    /// socket is made <see cref="UnixSocketMode"/> (0660) and given to group <paramref name="unixSocketGroupId"/> when
    /// one is named, both before it listens, so no client can connect while it still has the mode the umask gave it.
    /// </summary>
    public static NbdListener Bind(EndPoint endPoint, ILogger logger, int? unixSocketGroupId = null)
    {
        switch (endPoint)
        {
            case IPEndPoint ip:
            {
                var socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    if (ip.Address.Equals(IPAddress.IPv6Any))
                    {
                        socket.DualMode = true;
                    }

                    socket.Bind(ip);
                    socket.Listen(Backlog);
                    return new NbdListener(socket, socket.LocalEndPoint!, null);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            }

            case UnixDomainSocketEndPoint unix:
            {
                var path = unix.ToString();
                RemoveStaleSocket(path, logger);
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    socket.Bind(unix);
                    File.SetUnixFileMode(path, UnixSocketMode);
                    if (unixSocketGroupId is { } group)
                    {
                        Core.Storage.Posix.ChangeGroup(path, group);
                    }

                    socket.Listen(Backlog);
                    return new NbdListener(socket, unix, path);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            }

            default:
                throw new ArgumentException($"NBD can listen on IP or Unix socket end points, not {endPoint.GetType().Name}", nameof(endPoint));
        }
    }

    public void Dispose()
    {
        Socket.Dispose();
        if (SocketPath is not null)
        {
            File.Delete(SocketPath);
        }
    }

    /// <summary>
    /// A socket file left by a server that died cannot be bound again. It is removed when nothing
    /// answers on it; a live server on the path is left alone and binding fails.
    /// </summary>
    private static void RemoveStaleSocket(string path, ILogger logger)
    {
        if (!File.Exists(path))
        {
            return;
        }

        using (var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            try
            {
                probe.Connect(new UnixDomainSocketEndPoint(path));
            }
            catch (SocketException exception) when (exception.SocketErrorCode == SocketError.ConnectionRefused)
            {
                File.Delete(path);
                NbdLog.StaleSocketRemoved(logger, path);
                return;
            }
        }

        throw new IOException($"another server is listening on {path}");
    }
}

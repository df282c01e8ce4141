using System.IO.Pipelines;
using System.Net.Sockets;

namespace Replicator.Protocol;

/// <summary>
/// A transport whose bytes can also be received straight into a caller's buffer, past its input pipe:
/// a large payload then lands where it is used, in as few receive calls as the socket allows, instead of
/// being received into the pipe's segments and copied out of them.
/// </summary>
internal interface IDirectReceive
{
    /// <summary>
    /// Fills <paramref name="destination"/> from the transport; false when the stream ends first. Valid
    /// only while the input pipe holds no unconsumed bytes and no read on it is pending; the pipe then
    /// carries on after what was received here.
    /// </summary>
    ValueTask<bool> ReceiveExactlyAsync(Memory<byte> destination, CancellationToken cancellationToken);
}

/// <summary>A connected socket as a duplex pipe that can also receive directly.</summary>
/// <remarks>
/// On TCP a direct receive that cannot be filled from what has arrived sets the socket's receive low
/// water mark (SO_RCVLOWAT) to what is still missing, so the kernel wakes the socket's poller once for
/// the rest of the payload instead of once per arriving segment, and one receive call takes it all; the
/// mark is back at one byte before the pipe reads again. (A Unix socket's poll ignores the mark.)
/// </remarks>
internal sealed class SocketDuplexPipe : IDuplexPipe, IDirectReceive
{
    /// <summary>The highest low water mark set: the kernel also wakes a reader whose receive window is full.</summary>
    private const int MaxLowWater = 4 << 20;

    private readonly Socket _socket;
    private readonly bool _lowWater;

    /// <param name="socket">The connected socket; closed by its owner, not by the pipes.</param>
    /// <param name="stream">The socket as a stream, for the pipes.</param>
    /// <param name="receiveBufferSize">Size of each read from the socket into the input pipe.</param>
    /// <param name="sendBufferSize">Size of the segments the output pipe gathers before it writes to the socket.</param>
    public SocketDuplexPipe(Socket socket, Stream stream, int receiveBufferSize, int sendBufferSize)
    {
        _socket = socket;
        _lowWater = socket.ProtocolType == ProtocolType.Tcp;
        Input = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: receiveBufferSize, leaveOpen: true));
        Output = PipeWriter.Create(stream, new StreamPipeWriterOptions(minimumBufferSize: sendBufferSize, leaveOpen: true));
    }

    public PipeReader Input { get; }

    public PipeWriter Output { get; }

    public async ValueTask<bool> ReceiveExactlyAsync(Memory<byte> destination, CancellationToken cancellationToken)
    {
        var marked = false;
        try
        {
            while (!destination.IsEmpty)
            {
                var received = await _socket.ReceiveAsync(destination, SocketFlags.None, cancellationToken);
                if (received == 0)
                {
                    return false;
                }

                destination = destination[received..];
                if (_lowWater && !destination.IsEmpty)
                {
                    SetLowWater(Math.Min(destination.Length, MaxLowWater));
                    marked = true;
                }
            }

            return true;
        }
        finally
        {
            if (marked)
            {
                SetLowWater(1);
            }
        }
    }

    private void SetLowWater(int bytes)
    {
        try
        {
            _socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReceiveLowWater, bytes);
        }
        catch (Exception exception) when (exception is ObjectDisposedException or SocketException)
        {
            // The connection is broken or being torn down; the next receive on it reports that.
        }
    }
}

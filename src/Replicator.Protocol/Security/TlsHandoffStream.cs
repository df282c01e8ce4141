using System.Buffers.Binary;
using System.Net.Sockets;

namespace Replicator.Protocol.Security;

/// <summary>
/// The socket under an <see cref="System.Net.Security.SslStream"/> that may later be handed back to
/// raw use: until <see cref="StopLimiting"/>, a read never returns a byte past the end of the TLS
/// record it is in, so the TLS layer never takes in (and hides) bytes the peer sent after its last
/// record; after <see cref="Detach"/> the TLS layer can no longer touch the socket at all.
/// </summary>
/// <remarks>
/// <para>The peer link authenticates with mutual TLS and then, where encryption is off, both sides
/// carry on over the bare socket (see <c>PeerSecureHandshake</c>). That switch is safe only if, at
/// the moment of the switch, each side has read exactly the TLS records the other sent and nothing
/// more. <see cref="System.Net.Security.SslStream"/> reads its input in large chunks; this stream
/// cuts those reads at record boundaries (a record is a 5-byte header whose last two bytes give the
/// length of the body that follows, RFC 8446 §5.1), which costs one more receive per record during
/// the handshake only.</para>
/// <para>After the switch, anything the TLS layer still tries to write (a close_notify when it is
/// disposed, say) is dropped, and a read ends the stream: the socket belongs to the raw transport.</para>
/// <para>Not thread-safe beyond what <see cref="System.Net.Security.SslStream"/> needs: one reader and one
/// writer at a time; <see cref="Detach"/> and <see cref="StopLimiting"/> are called once the TLS layer is idle.</para>
/// </remarks>
internal sealed class TlsHandoffStream : Stream
{
    private const int RecordHeaderLength = 5;

    private readonly Socket _socket;
    private readonly byte[] _header = new byte[RecordHeaderLength];
    private int _headerUnread;
    private int _bodyLeft;
    private bool _limiting = true;
    private volatile bool _detached;

    /// <param name="socket">The connected socket; disposing this stream closes it, unless it was handed back to raw use by <see cref="Detach"/>.</param>
    public TlsHandoffStream(Socket socket)
    {
        _socket = socket;
    }

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    /// <summary>Whether a read stopped exactly at the end of a record (nothing of a next record has been taken in).</summary>
    public bool AtRecordBoundary => _headerUnread == 0 && _bodyLeft == 0;

    /// <summary>The TLS layer stays: reads no longer need to stop at record boundaries.</summary>
    public void StopLimiting() => _limiting = false;

    /// <summary>The socket goes to raw use: from now on this stream neither reads from nor writes to it.</summary>
    public void Detach() => _detached = true;

    /// <exception cref="IOException">The socket failed (reset, say), as <see cref="NetworkStream"/> reports it.</exception>
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            return await ReadCoreAsync(buffer, cancellationToken);
        }
        catch (SocketException exception)
        {
            throw new IOException($"Receiving from the socket failed: {exception.Message}", exception);
        }
    }

    /// <exception cref="IOException">The socket failed (reset, say), as <see cref="NetworkStream"/> reports it.</exception>
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            while (!_detached && !buffer.IsEmpty)
            {
                var sent = await _socket.SendAsync(buffer, SocketFlags.None, cancellationToken);
                buffer = buffer[sent..];
            }
        }
        catch (SocketException exception)
        {
            throw new IOException($"Sending to the socket failed: {exception.Message}", exception);
        }
    }

    private async ValueTask<int> ReadCoreAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (_detached || buffer.IsEmpty)
        {
            return 0;
        }

        if (!_limiting && _headerUnread == 0)
        {
            return await _socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
        }

        if (_headerUnread == 0 && _bodyLeft == 0 && !await ReadHeaderAsync(cancellationToken))
        {
            return 0;
        }

        if (_headerUnread > 0)
        {
            var count = Math.Min(_headerUnread, buffer.Length);
            _header.AsSpan(RecordHeaderLength - _headerUnread, count).CopyTo(buffer.Span);
            _headerUnread -= count;
            return count;
        }

        var received = await _socket.ReceiveAsync(_limiting ? buffer[..Math.Min(buffer.Length, _bodyLeft)] : buffer, SocketFlags.None, cancellationToken);
        _bodyLeft = Math.Max(0, _bodyLeft - received);
        return received;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count).GetAwaiter().GetResult();

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer, offset, count).GetAwaiter().GetResult();

    public override void Flush()
    {
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && !_detached)
        {
            _socket.Dispose();
        }

        base.Dispose(disposing);
    }

    public override void SetLength(long value) => throw new NotSupportedException();

    /// <summary>Reads the next record's header whole; false when the stream ends before its first byte.</summary>
    private async ValueTask<bool> ReadHeaderAsync(CancellationToken cancellationToken)
    {
        var filled = 0;
        while (filled < RecordHeaderLength)
        {
            var received = await _socket.ReceiveAsync(_header.AsMemory(filled), SocketFlags.None, cancellationToken);
            if (received == 0)
            {
                if (filled == 0)
                {
                    return false;
                }

                throw new IOException($"The connection ended inside a TLS record header ({filled} of {RecordHeaderLength} bytes).");
            }

            filled += received;
        }

        _headerUnread = RecordHeaderLength;
        _bodyLeft = BinaryPrimitives.ReadUInt16BigEndian(_header.AsSpan(3));
        return true;
    }
}

using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Replicator.IntegrationTests.Harness;

/// <summary>
/// A deliberately minimal NBD client over a real TCP socket, for sending what well-behaved
/// clients never send: truncated handshakes, out-of-range requests, unknown commands, a write
/// whose payload never arrives. Simple replies only.
/// </summary>
public sealed class RawNbdClient : IAsyncDisposable
{
    public const ushort CmdRead = 0;
    public const ushort CmdWrite = 1;
    public const ushort CmdDisc = 2;
    public const ushort CmdFlush = 3;
    public const uint EPERM = 1;
    public const uint EINVAL = 22;
    public const uint ENOSPC = 28;
    private const ulong IHaveOpt = 0x49484156454F5054;
    private const ulong OptReplyMagic = 0x3e889045565a9;

    private readonly Socket _socket;
    private readonly NetworkStream _stream;

    private RawNbdClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
    }

    public long ExportSize { get; private set; }

    /// <summary>Connects to <c>nbd://HOST:PORT</c> (plain TCP) or <c>nbd+unix:///?socket=PATH</c>; this client speaks no TLS.</summary>
    public static async Task<RawNbdClient> ConnectAsync(string uri)
    {
        var parsed = new Uri(uri);
        Socket socket;
        EndPoint endpoint;
        if (parsed.Scheme == "nbd+unix")
        {
            endpoint = new UnixDomainSocketEndPoint(Uri.UnescapeDataString(parsed.Query.TrimStart('?').Split('&').Single(p => p.StartsWith("socket=", StringComparison.Ordinal))["socket=".Length..]));
            socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        }
        else
        {
            endpoint = IPEndPoint.Parse(parsed.Authority);
            socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        }

        await socket.ConnectAsync(endpoint).WaitAsync(TimeSpan.FromSeconds(10));
        return new RawNbdClient(socket);
    }

    /// <summary>Reads the server greeting and answers with fixed-newstyle client flags.</summary>
    public async Task GreetAsync()
    {
        var greeting = await ReadExactlyAsync(18);
        Assert.Equal("NBDMAGICIHAVEOPT", Encoding.ASCII.GetString(greeting, 0, 16));
        await WriteAsync(BigEndian32(3));
    }

    /// <summary>Sends an option and returns the reply types until a final one (ACK or an error).</summary>
    public async Task<List<uint>> OptionAsync(uint option, byte[] data)
    {
        var header = new byte[16 + data.Length];
        BinaryPrimitives.WriteUInt64BigEndian(header, IHaveOpt);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(12), (uint)data.Length);
        data.CopyTo(header, 16);
        await WriteAsync(header);
        var replies = new List<uint>();
        while (true)
        {
            var reply = await ReadExactlyAsync(20);
            Assert.Equal(OptReplyMagic, BinaryPrimitives.ReadUInt64BigEndian(reply));
            var type = BinaryPrimitives.ReadUInt32BigEndian(reply.AsSpan(12));
            var payload = await ReadExactlyAsync((int)BinaryPrimitives.ReadUInt32BigEndian(reply.AsSpan(16)));
            replies.Add(type);
            if (type == 3 && payload.Length >= 12 && BinaryPrimitives.ReadUInt16BigEndian(payload) == 0)
            {
                ExportSize = (long)BinaryPrimitives.ReadUInt64BigEndian(payload.AsSpan(2));
            }

            if (type != 2 && type != 3 && type != 4)
            {
                return replies;
            }
        }
    }

    /// <summary>
    /// Greets and enters transmission on <paramref name="export"/> with NBD_OPT_GO; with
    /// <paramref name="requestBlockSize"/> the client asks for (and so agrees to) the block size constraints.
    /// </summary>
    public async Task GoAsync(string export, bool requestBlockSize = false)
    {
        await GreetAsync();
        var name = Encoding.UTF8.GetBytes(export);
        var data = new byte[4 + name.Length + 2 + (requestBlockSize ? 2 : 0)];
        BinaryPrimitives.WriteUInt32BigEndian(data, (uint)name.Length);
        name.CopyTo(data, 4);
        if (requestBlockSize)
        {
            BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(4 + name.Length), 1);
            BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(6 + name.Length), 3);
        }

        var replies = await OptionAsync(7, data);
        Assert.Equal(1u, replies[^1]);
    }

    public Task SendRequestAsync(ushort type, ushort flags, ulong cookie, ulong offset, uint length, byte[]? payload = null)
    {
        var request = new byte[28 + (payload?.Length ?? 0)];
        BinaryPrimitives.WriteUInt32BigEndian(request, 0x25609513);
        BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(4), flags);
        BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(6), type);
        BinaryPrimitives.WriteUInt64BigEndian(request.AsSpan(8), cookie);
        BinaryPrimitives.WriteUInt64BigEndian(request.AsSpan(16), offset);
        BinaryPrimitives.WriteUInt32BigEndian(request.AsSpan(24), length);
        payload?.CopyTo(request, 28);
        return WriteAsync(request);
    }

    /// <summary>Reads one simple reply; <paramref name="dataLength"/> bytes follow a successful read.</summary>
    public async Task<(uint Error, ulong Cookie, byte[] Data)> ReadReplyAsync(int dataLength = 0)
    {
        var reply = await ReadExactlyAsync(16);
        Assert.Equal(0x67446698u, BinaryPrimitives.ReadUInt32BigEndian(reply));
        var error = BinaryPrimitives.ReadUInt32BigEndian(reply.AsSpan(4));
        var data = error == 0 && dataLength > 0 ? await ReadExactlyAsync(dataLength) : [];
        return (error, BinaryPrimitives.ReadUInt64BigEndian(reply.AsSpan(8)), data);
    }

    public Task WriteAsync(byte[] bytes) => _stream.WriteAsync(bytes).AsTask().WaitAsync(TimeSpan.FromSeconds(10));

    /// <summary>True when the server has closed the connection (reads end) within the timeout.</summary>
    public async Task<bool> IsClosedByServerAsync(TimeSpan timeout)
    {
        var buffer = new byte[256];
        var deadline = DateTime.UtcNow + timeout;
        try
        {
            while (DateTime.UtcNow < deadline)
            {
                var n = await _stream.ReadAsync(buffer).AsTask().WaitAsync(deadline - DateTime.UtcNow);
                if (n == 0)
                {
                    return true;
                }
            }
        }
        catch (IOException)
        {
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }

        return false;
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _socket.Dispose();
    }

    private async Task<byte[]> ReadExactlyAsync(int count)
    {
        var buffer = new byte[count];
        await _stream.ReadExactlyAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        return buffer;
    }

    private static byte[] BigEndian32(uint value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        return bytes;
    }
}

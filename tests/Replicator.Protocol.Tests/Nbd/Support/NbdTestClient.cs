using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net.Security;
using System.Text;
using Replicator.Protocol.Nbd;

namespace Replicator.Protocol.Tests.Nbd.Support;

/// <summary>One reply from the server during the handshake.</summary>
internal sealed record OptionReply(uint Option, uint Type, byte[] Data)
{
    public string Text => Encoding.UTF8.GetString(Data);

    public ushort InfoType => BinaryPrimitives.ReadUInt16BigEndian(Data);
}

/// <summary>One reply message in transmission: a simple reply, or one structured chunk.</summary>
internal sealed record NbdReply(bool Structured, uint Error, ulong Handle, ushort Flags, ushort Type, byte[] Payload)
{
    public bool IsDone => !Structured || (Flags & NbdWire.ReplyFlagDone) != 0;

    /// <summary>The error of a simple reply or of an error chunk; zero otherwise.</summary>
    public uint ErrorValue => Structured
        ? (Type & 0x8000) != 0 ? BinaryPrimitives.ReadUInt32BigEndian(Payload) : 0
        : Error;

    public string ErrorMessage => Encoding.UTF8.GetString(Payload, 6, BinaryPrimitives.ReadUInt16BigEndian(Payload.AsSpan(4)));

    public ulong DataOffset => BinaryPrimitives.ReadUInt64BigEndian(Payload);

    /// <summary>READ data: all of a simple reply's payload, or what follows the offset of OFFSET_DATA.</summary>
    public byte[] Data => Structured ? Payload[8..] : Payload;

    public uint ContextId => BinaryPrimitives.ReadUInt32BigEndian(Payload);

    public (uint Length, uint Status)[] Descriptors =>
    [
        .. Enumerable.Range(0, (Payload.Length - 4) / 8).Select(i => (
            BinaryPrimitives.ReadUInt32BigEndian(Payload.AsSpan(4 + (8 * i))),
            BinaryPrimitives.ReadUInt32BigEndian(Payload.AsSpan(8 + (8 * i))))),
    ];
}

/// <summary>What NBD_OPT_GO told the client.</summary>
internal sealed record NegotiatedExport(ulong Size, ushort Flags, uint MinimumBlockSize, uint PreferredBlockSize, uint MaximumBlockSize);

/// <summary>
/// A minimal NBD client over any duplex pipe, written from the spec and independent of the server's
/// formatting code. Every wait is bounded by <see cref="Timeout"/>.
/// </summary>
internal sealed class NbdTestClient
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private PipeReader _input;
    private PipeWriter _output;
    private bool _structured;

    public NbdTestClient(IDuplexPipe pipe)
    {
        _input = pipe.Input;
        _output = pipe.Output;
    }

    /// <summary>Length of the data that follows a successful simple reply, by handle (READ requests only).</summary>
    public Dictionary<ulong, int> SimpleReadLengths { get; } = [];

    public async Task SendAsync(byte[] bytes)
    {
        await _output.WriteAsync(bytes).AsTask().WaitAsync(Timeout);
    }

    /// <summary>Sends one byte per flush, so the server sees the message arrive in the smallest pieces.</summary>
    public async Task SendBytePerFlushAsync(byte[] bytes)
    {
        for (var i = 0; i < bytes.Length; i++)
        {
            await _output.WriteAsync(bytes.AsMemory(i, 1)).AsTask().WaitAsync(Timeout);
        }
    }

    /// <summary>The client goes away: its side of the connection ends.</summary>
    public async Task CloseAsync() => await _output.CompleteAsync();

    public async Task<byte[]> ReadExactAsync(int count)
    {
        if (count == 0)
        {
            return [];
        }

        using var timeout = new CancellationTokenSource(Timeout);
        while (true)
        {
            var result = await _input.ReadAsync(timeout.Token);
            var buffer = result.Buffer;
            if (buffer.Length >= count)
            {
                var bytes = buffer.Slice(0, count).ToArray();
                _input.AdvanceTo(buffer.GetPosition(count));
                return bytes;
            }

            _input.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                throw new EndOfStreamException($"the server closed the connection after {buffer.Length} of {count} bytes");
            }
        }
    }

    /// <summary>True when the server has closed its side and sent nothing more.</summary>
    public async Task<bool> ServerClosedAsync()
    {
        using var timeout = new CancellationTokenSource(Timeout);
        var result = await _input.ReadAsync(timeout.Token);
        var closed = result.IsCompleted && result.Buffer.IsEmpty;
        _input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        return closed;
    }

    public async Task<ushort> ReadGreetingAsync()
    {
        var greeting = await ReadExactAsync(18);
        Assert.Equal(NbdWire.InitPassword, BinaryPrimitives.ReadUInt64BigEndian(greeting));
        Assert.Equal(NbdWire.OptionMagic, BinaryPrimitives.ReadUInt64BigEndian(greeting.AsSpan(8)));
        return BinaryPrimitives.ReadUInt16BigEndian(greeting.AsSpan(16));
    }

    /// <summary>Greeting and client flags: the client is ready to send options.</summary>
    public async Task OpenAsync(uint clientFlags = NbdWire.ClientFlagFixedNewstyle | NbdWire.ClientFlagNoZeroes)
    {
        await ReadGreetingAsync();
        await SendAsync(NbdBytes.ClientFlags(clientFlags));
    }

    public async Task<OptionReply> ReadOptionReplyAsync()
    {
        var header = await ReadExactAsync(20);
        Assert.Equal(NbdWire.OptionReplyMagic, BinaryPrimitives.ReadUInt64BigEndian(header));
        var length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16));
        return new OptionReply(
            BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8)),
            BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12)),
            await ReadExactAsync((int)length));
    }

    /// <summary>
    /// NBD_OPT_STARTTLS, asserting the ACK, then the TLS handshake: from then on the client talks over TLS, with
    /// nothing negotiated before it. Returns the TLS layer, which the caller closes.
    /// </summary>
    public async Task<NbdTlsTransport> StartTlsAsync(Func<string, SslClientAuthenticationOptions> authentication)
    {
        var reply = (await OptionAsync(NbdWire.OptStartTls)).Single();
        Assert.Equal(NbdWire.RepAck, reply.Type);
        using var timeout = new CancellationTokenSource(Timeout);
        var tls = await NbdTlsTransport.ConnectAsync(new DuplexPipe(_input, _output), authentication("localhost"), 4096, 4096, timeout.Token);
        _input = tls.Input;
        _output = tls.Output;
        _structured = false;
        return tls;
    }

    /// <summary>Sends an option and reads its replies up to the final one (an ACK or an error).</summary>
    public async Task<List<OptionReply>> OptionAsync(uint option, byte[]? data = null)
    {
        await SendAsync(NbdBytes.Option(option, data));
        var replies = new List<OptionReply>();
        while (true)
        {
            var reply = await ReadOptionReplyAsync();
            Assert.Equal(option, reply.Option);
            replies.Add(reply);
            if (reply.Type is not (NbdWire.RepInfo or NbdWire.RepServer or NbdWire.RepMetaContext))
            {
                _structured |= option == NbdWire.OptStructuredReply && reply.Type == NbdWire.RepAck;
                return replies;
            }
        }
    }

    /// <summary>A whole handshake ending in NBD_OPT_GO; asserts that it succeeds.</summary>
    public async Task<NegotiatedExport> StartAsync(
        string export = "vol0", bool structured = false, bool baseAllocation = false, bool blockSizes = false, bool open = true)
    {
        if (open)
        {
            await OpenAsync();
        }

        if (structured)
        {
            Assert.Equal(NbdWire.RepAck, (await OptionAsync(NbdWire.OptStructuredReply)).Single().Type);
        }

        if (baseAllocation)
        {
            var replies = await OptionAsync(NbdWire.OptSetMetaContext, NbdBytes.MetaContextData(export, NbdWire.BaseAllocation));
            Assert.Equal([NbdWire.RepMetaContext, NbdWire.RepAck], replies.Select(r => r.Type));
        }

        var go = await OptionAsync(NbdWire.OptGo, blockSizes ? NbdBytes.InfoData(export, NbdWire.InfoBlockSize) : NbdBytes.InfoData(export));
        Assert.Equal(NbdWire.RepAck, go[^1].Type);
        var info = go.Single(r => r.Type == NbdWire.RepInfo && r.InfoType == NbdWire.InfoExport).Data;
        var sizes = go.Single(r => r.Type == NbdWire.RepInfo && r.InfoType == NbdWire.InfoBlockSize).Data;
        return new NegotiatedExport(
            BinaryPrimitives.ReadUInt64BigEndian(info.AsSpan(2)),
            BinaryPrimitives.ReadUInt16BigEndian(info.AsSpan(10)),
            BinaryPrimitives.ReadUInt32BigEndian(sizes.AsSpan(2)),
            BinaryPrimitives.ReadUInt32BigEndian(sizes.AsSpan(6)),
            BinaryPrimitives.ReadUInt32BigEndian(sizes.AsSpan(10)));
    }

    public Task SendRequestAsync(ushort type, ulong offset = 0, uint length = 0, ushort flags = 0, ulong handle = 1, byte[]? payload = null)
    {
        if (type == NbdWire.CmdRead)
        {
            SimpleReadLengths[handle] = (int)length;
        }

        return SendAsync(NbdBytes.Request(type, offset, length, flags, handle, payload));
    }

    /// <summary>Reads one reply message: a simple reply (with READ data when it succeeded) or one structured chunk.</summary>
    public async Task<NbdReply> ReadReplyAsync()
    {
        var magic = BinaryPrimitives.ReadUInt32BigEndian(await PeekAsync(4));
        if (magic == NbdWire.SimpleReplyMagic)
        {
            var header = await ReadExactAsync(16);
            var error = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4));
            var handle = BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(8));
            var dataLength = error == 0 && SimpleReadLengths.Remove(handle, out var length) ? length : 0;
            return new NbdReply(false, error, handle, 0, 0, await ReadExactAsync(dataLength));
        }

        Assert.Equal(NbdWire.StructuredReplyMagic, magic);
        Assert.True(_structured, "a structured reply arrived but structured replies were not negotiated");
        var chunk = await ReadExactAsync(20);
        var payloadLength = BinaryPrimitives.ReadUInt32BigEndian(chunk.AsSpan(16));
        return new NbdReply(
            true, 0, BinaryPrimitives.ReadUInt64BigEndian(chunk.AsSpan(8)), BinaryPrimitives.ReadUInt16BigEndian(chunk.AsSpan(4)),
            BinaryPrimitives.ReadUInt16BigEndian(chunk.AsSpan(6)), await ReadExactAsync((int)payloadLength));
    }

    /// <summary>Sends a request and reads its one reply message.</summary>
    public async Task<NbdReply> RequestAsync(ushort type, ulong offset = 0, uint length = 0, ushort flags = 0, ulong handle = 1, byte[]? payload = null)
    {
        await SendRequestAsync(type, offset, length, flags, handle, payload);
        var reply = await ReadReplyAsync();
        Assert.Equal(handle, reply.Handle);
        Assert.True(reply.IsDone, "this server sends every reply as one final chunk");
        return reply;
    }

    /// <summary>Writes then reads back, asserting success: proves the connection still works.</summary>
    public async Task AssertWorksAsync(ulong offset = 0)
    {
        var data = NbdBytes.Pattern(512, (int)offset + 99);
        Assert.Equal(0u, (await RequestAsync(NbdWire.CmdWrite, offset, 512, handle: 0xAAAA, payload: data)).ErrorValue);
        var read = await RequestAsync(NbdWire.CmdRead, offset, 512, handle: 0xBBBB);
        Assert.Equal(0u, read.ErrorValue);
        Assert.Equal(data, read.Data);
    }

    private async Task<byte[]> PeekAsync(int count)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        while (true)
        {
            var result = await _input.ReadAsync(timeout.Token);
            var buffer = result.Buffer;
            if (buffer.Length >= count)
            {
                var bytes = buffer.Slice(0, count).ToArray();
                _input.AdvanceTo(buffer.Start);
                return bytes;
            }

            _input.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                throw new EndOfStreamException("the server closed the connection");
            }
        }
    }
}

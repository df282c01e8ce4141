using System.Buffers;
using System.IO.Pipelines;
using Replicator.Protocol.Nbd;
using Replicator.Protocol.Nbd.Client;

namespace Replicator.Protocol.Tests.Nbd.Client;

/// <summary>
/// The server end of an in-memory connection, driven by the test step by step: it answers the handshake, then
/// hands the test each request and sends whatever bytes the test gives it, however malformed or out of order.
/// </summary>
internal sealed class ScriptedNbdServer : IAsyncDisposable
{
    private readonly Pipe _toServer = new();
    private readonly Pipe _toClient = new();

    public IDuplexPipe ClientSide => new DuplexPipe(_toClient.Reader, _toServer.Writer);

    /// <summary>Greets, answers STRUCTURED_REPLY (ACK or ERR_UNSUP), SET_META_CONTEXT (context 7) and GO.</summary>
    public async Task HandshakeAsync(bool structured, ulong size = 1 << 20, ushort flags = NbdWire.FlagHasFlags | NbdWire.FlagSendFlush)
    {
        NbdOptionReplies.WriteGreeting(_toClient.Writer);
        await _toClient.Writer.FlushAsync();
        await ReadAsync((ref ReadOnlySequence<byte> b) => NbdFrameReader.TryReadClientFlags(ref b, out _));
        while (true)
        {
            var option = 0u;
            await ReadAsync((ref ReadOnlySequence<byte> b) =>
            {
                var read = NbdFrameReader.TryReadOption(ref b, NbdWire.MaxOptionDataLength, out var header, out _);
                option = header.Option;
                return read;
            });

            switch (option)
            {
                case NbdWire.OptStructuredReply when structured:
                    NbdOptionReplies.WriteAck(_toClient.Writer, option);
                    break;
                case NbdWire.OptStructuredReply:
                    NbdOptionReplies.WriteError(_toClient.Writer, option, NbdWire.RepErrUnsup, "no structured replies here");
                    break;
                case NbdWire.OptSetMetaContext:
                    NbdOptionReplies.WriteMetaContext(_toClient.Writer, option, 7, NbdWire.BaseAllocation);
                    NbdOptionReplies.WriteAck(_toClient.Writer, option);
                    break;
                case NbdWire.OptGo:
                    NbdOptionReplies.WriteInfoExport(_toClient.Writer, option, size, flags);
                    NbdOptionReplies.WriteAck(_toClient.Writer, option);
                    await _toClient.Writer.FlushAsync();
                    return;
                default:
                    Assert.Fail($"the client sent option {option}");
                    break;
            }

            await _toClient.Writer.FlushAsync();
        }
    }

    /// <summary>The next request; a WRITE's payload is read with it.</summary>
    public async Task<(NbdRequest Request, byte[] Payload)> ReadRequestAsync()
    {
        NbdRequest request = default;
        await ReadAsync((ref ReadOnlySequence<byte> b) => NbdFrameReader.TryReadRequest(ref b, out request));
        var payload = new byte[request.PayloadLength];
        var filled = 0;
        while (filled < payload.Length)
        {
            await ReadAsync((ref ReadOnlySequence<byte> b) =>
            {
                var moved = NbdFrameReader.ReadPayload(ref b, payload.AsSpan(filled));
                filled += moved;
                return moved > 0;
            });
        }

        return (request, payload);
    }

    public async Task SendAsync(params byte[][] messages)
    {
        foreach (var message in messages)
        {
            await _toClient.Writer.WriteAsync(message);
        }
    }

    /// <summary>Sends each byte in its own flush, so the client sees every split point.</summary>
    public async Task SendBytePerFlushAsync(byte[] message)
    {
        foreach (var b in message)
        {
            await _toClient.Writer.WriteAsync(new[] { b });
        }
    }

    /// <summary>Closes the connection from the server's side, as a server that died would.</summary>
    public async Task CloseAsync()
    {
        await _toClient.Writer.CompleteAsync();
        await _toServer.Reader.CompleteAsync();
    }

    /// <summary>Whether the client closed its side: the server reads the end of the stream, or the error the client gave up with.</summary>
    public async Task<bool> ClientClosedAsync()
    {
        try
        {
            var result = await _toServer.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            _toServer.Reader.AdvanceTo(result.Buffer.End);
            return result.IsCompleted;
        }
        catch (NbdConnectionLostException)
        {
            return true;
        }
    }

    public async ValueTask DisposeAsync() => await CloseAsync();

    private delegate bool Parse(ref ReadOnlySequence<byte> buffer);

    private async Task ReadAsync(Parse parse)
    {
        while (true)
        {
            var result = await _toServer.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            var buffer = result.Buffer;
            if (parse(ref buffer))
            {
                _toServer.Reader.AdvanceTo(buffer.Start);
                return;
            }

            _toServer.Reader.AdvanceTo(buffer.Start, buffer.End);

            Assert.False(result.IsCompleted, "the client closed the connection");
        }
    }
}

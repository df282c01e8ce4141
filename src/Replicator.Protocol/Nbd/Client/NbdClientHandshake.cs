using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Text;
using Replicator.Core.Devices;

namespace Replicator.Protocol.Nbd.Client;

/// <summary>What NBD_OPT_GO and the options before it agreed on.</summary>
/// <param name="BaseAllocationContextId">The id the server gave <c>base:allocation</c>, or null when BLOCK_STATUS cannot be used.</param>
internal sealed record NbdClientExport(
    string Name,
    long Size,
    ushort TransmissionFlags,
    bool StructuredReplies,
    uint? BaseAllocationContextId,
    uint MinimumBlockSize,
    uint PreferredBlockSize,
    uint MaximumBlockSize)
{
    public bool Has(ushort flag) => (TransmissionFlags & flag) != 0;

    /// <summary>What the export supports, in the device terms of Core.</summary>
    public DeviceFeatures Features =>
        (Has(NbdWire.FlagReadOnly) ? DeviceFeatures.ReadOnly : 0)
        | (Has(NbdWire.FlagSendFlush) ? DeviceFeatures.Flush : 0)
        | (Has(NbdWire.FlagSendFua) ? DeviceFeatures.Fua : 0)
        | (Has(NbdWire.FlagSendTrim) ? DeviceFeatures.Trim : 0)
        | (Has(NbdWire.FlagSendWriteZeroes) ? DeviceFeatures.WriteZeroes : 0)
        | (Has(NbdWire.FlagSendCache) ? DeviceFeatures.Cache : 0)
        | (Has(NbdWire.FlagCanMultiConn) ? DeviceFeatures.MultiConn : 0)
        | (BaseAllocationContextId is not null ? DeviceFeatures.BlockStatus : 0);
}

/// <summary>The server refused the handshake (for instance, no such export); carries the NBD_REP_ERR_* it sent.</summary>
internal sealed class NbdHandshakeException(uint reply, string message) : IOException(message)
{
    /// <summary>The error reply type (NBD_REP_ERR_*), or 0 when the server did not send one.</summary>
    public uint Reply { get; } = reply;
}

/// <summary>
/// The client's side of the fixed newstyle handshake: greeting, client flags, NBD_OPT_STARTTLS when TLS is wanted
/// (then the TLS handshake, and everything after it over TLS), NBD_OPT_STRUCTURED_REPLY,
/// NBD_OPT_SET_META_CONTEXT for <c>base:allocation</c>, then NBD_OPT_GO (asking for block sizes if told to). Each option is
/// answered before the next is sent. A refused structured reply or meta context only means those features are
/// not used; a refused GO fails the handshake. A refused STARTTLS fails it too unless TLS is only
/// <see cref="NbdTlsMode.Optional"/>.
/// </summary>
internal static class NbdClientHandshake
{
    /// <param name="startTls">Runs the TLS handshake over the pipe it is given and returns the pipe over TLS.</param>
    public static async Task<NbdClientExport> RunAsync(
        IDuplexPipe transport, string exportName, bool requestBlockSizes, NbdTlsMode tlsMode,
        Func<IDuplexPipe, Task<IDuplexPipe>> startTls, CancellationToken cancellationToken)
    {
        var input = transport.Input;
        var output = transport.Output;
        var handshakeFlags = await ReadAsync(input, static (ref ReadOnlySequence<byte> b, out ushort flags) =>
            NbdHandshakeMessages.TryReadGreeting(ref b, out flags), cancellationToken);
        if ((handshakeFlags & NbdWire.FlagFixedNewstyle) == 0)
        {
            throw new NbdHandshakeException(0, "the server does not offer the fixed newstyle handshake");
        }

        NbdHandshakeMessages.WriteClientFlags(output, handshakeFlags);
        if (tlsMode != NbdTlsMode.Off)
        {
            NbdHandshakeMessages.WriteOption(output, NbdWire.OptStartTls);
            await FlushAsync(output, cancellationToken);
            if (await ReadRepliesAsync(input, NbdWire.OptStartTls, static (_, _) => { }, cancellationToken) is { } refused)
            {
                if (tlsMode == NbdTlsMode.Required)
                {
                    throw new NbdHandshakeException(refused.Reply, $"the server refused TLS: {NbdErrors.ReplyName(refused.Reply)} {refused.Message}".TrimEnd());
                }
            }
            else
            {
                var tls = await startTls(transport);
                input = tls.Input;
                output = tls.Output;
            }
        }

        NbdHandshakeMessages.WriteOption(output, NbdWire.OptStructuredReply);
        await FlushAsync(output, cancellationToken);
        var structured = await ReadRepliesAsync(input, NbdWire.OptStructuredReply, static (_, _) => { }, cancellationToken) is null;

        uint? contextId = null;
        if (structured)
        {
            NbdHandshakeMessages.WriteSetMetaContext(output, exportName, NbdWire.BaseAllocation);
            await FlushAsync(output, cancellationToken);
            await ReadRepliesAsync(input, NbdWire.OptSetMetaContext, (header, data) =>
            {
                if (header.ReplyType == NbdWire.RepMetaContext && data.Length > 4
                    && Encoding.UTF8.GetString(data.AsSpan(4)) == NbdWire.BaseAllocation)
                {
                    contextId = BinaryPrimitives.ReadUInt32BigEndian(data);
                }
            }, cancellationToken);
        }

        NbdHandshakeMessages.WriteGo(output, exportName, requestBlockSizes ? [NbdWire.InfoBlockSize] : []);
        await FlushAsync(output, cancellationToken);
        long? size = null;
        ushort flags = 0;
        uint minimum = 1, preferred = NbdWire.PreferredBlockSize, maximum = NbdWire.MaximumBlockSize;
        var refusal = await ReadRepliesAsync(input, NbdWire.OptGo, (header, data) =>
        {
            if (header.ReplyType != NbdWire.RepInfo || data.Length < 2)
            {
                return;
            }

            switch (BinaryPrimitives.ReadUInt16BigEndian(data))
            {
                case NbdWire.InfoExport when data.Length >= 12:
                    size = (long)BinaryPrimitives.ReadUInt64BigEndian(data.AsSpan(2));
                    flags = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(10));
                    break;
                case NbdWire.InfoBlockSize when data.Length >= 14:
                    minimum = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(2));
                    preferred = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(6));
                    maximum = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(10));
                    break;
            }
        }, cancellationToken);

        if (refusal is { } error)
        {
            throw new NbdHandshakeException(error.Reply, $"the server refused export '{exportName}': {NbdErrors.ReplyName(error.Reply)} {error.Message}".TrimEnd());
        }

        if (size is not { } exportSize || exportSize < 0)
        {
            throw new NbdHandshakeException(0, $"the server accepted export '{exportName}' without telling its size");
        }

        return new NbdClientExport(exportName, exportSize, flags, structured, contextId, Math.Max(minimum, 1), preferred,
            Math.Min(maximum, NbdWire.MaximumBlockSize));
    }

    private delegate bool TryRead<T>(ref ReadOnlySequence<byte> buffer, out T value);

    /// <summary>
    /// Reads replies to <paramref name="option"/> up to the final one (ACK or an error), passing each to
    /// <paramref name="each"/>. Returns the error reply, or null after an ACK.
    /// </summary>
    private static async Task<(uint Reply, string Message)?> ReadRepliesAsync(
        PipeReader input, uint option, Action<NbdOptionReplyHeader, byte[]> each, CancellationToken cancellationToken)
    {
        while (true)
        {
            var (header, data) = await ReadAsync(input, static (ref ReadOnlySequence<byte> b, out (NbdOptionReplyHeader, byte[]) reply) =>
            {
                if (NbdHandshakeMessages.TryReadOptionReply(ref b, out var h, out var d))
                {
                    reply = (h, d.ToArray());
                    return true;
                }

                reply = default;
                return false;
            }, cancellationToken);

            if (header.Option != option)
            {
                throw new NbdReplyProtocolException($"the server answered option {header.Option} while {NbdErrors.OptionName(option)} was asked");
            }

            if (header.IsError)
            {
                return (header.ReplyType, Encoding.UTF8.GetString(data));
            }

            if (header.ReplyType == NbdWire.RepAck)
            {
                return null;
            }

            each(header, data);
        }
    }

    private static async Task<T> ReadAsync<T>(PipeReader input, TryRead<T> tryRead, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken);
            var buffer = result.Buffer;
            if (tryRead(ref buffer, out var value))
            {
                // Only what was parsed counts as examined: the next reply may already be in the buffer.
                input.AdvanceTo(buffer.Start);
                return value;
            }

            input.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                throw new NbdHandshakeException(0, "the server closed the connection during the handshake");
            }
        }
    }

    private static async ValueTask FlushAsync(PipeWriter output, CancellationToken cancellationToken)
    {
        var result = await output.FlushAsync(cancellationToken);
        if (result.IsCompleted)
        {
            throw new NbdHandshakeException(0, "the server stopped reading during the handshake");
        }
    }
}

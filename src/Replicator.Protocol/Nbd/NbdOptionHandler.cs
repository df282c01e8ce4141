using System.Buffers;
using System.IO.Pipelines;
using Microsoft.Extensions.Logging;
using Replicator.Core.Devices;

namespace Replicator.Protocol.Nbd;

/// <summary>What the handshake does after an option.</summary>
internal enum NbdOptionOutcome
{
    /// <summary>Wait for the next option.</summary>
    Continue,
    /// <summary>The client aborted the handshake.</summary>
    Abort,
    /// <summary>The client chose an export; the transmission phase begins.</summary>
    Transmission,
    /// <summary>STARTTLS was acknowledged: the TLS handshake follows, then the options go on over TLS.</summary>
    StartTls,
}

/// <summary>
/// The meaning of each handshake option, one method per option, and the state they negotiate.
/// Every reply is flushed before the next option is read (the client waits for it). An option that
/// fails leaves the connection usable: it is answered with the NBD_REP_ERR_* the spec names and a
/// message, and logged once.
/// </summary>
internal sealed partial class NbdOptionHandler
{
    private readonly INbdExportCatalog _catalog;
    private readonly ILogger _logger;
    private readonly string _connection;
    private readonly CancellationToken _stopping;
    private readonly NbdTlsMode _tlsMode;
    private readonly NbdExportConnectionLimit? _exportLimit;
    private PipeWriter _output;
    private bool _noZeroes;
    private bool _fixedNewstyle;
    private bool _structuredReplies;
    private string? _metaContextExport;

    public NbdOptionHandler(
        PipeWriter output, INbdExportCatalog catalog, ILogger logger, string connection, CancellationToken stopping,
        NbdTlsMode tlsMode = NbdTlsMode.Off, NbdExportConnectionLimit? exportLimit = null)
    {
        _output = output;
        _catalog = catalog;
        _logger = logger;
        _connection = connection;
        _stopping = stopping;
        _tlsMode = tlsMode;
        _exportLimit = exportLimit;
    }

    /// <summary>TLS was started on this connection.</summary>
    public bool UsingTls { get; private set; }

    /// <summary>The export chosen by NBD_OPT_GO or NBD_OPT_EXPORT_NAME, once the outcome is <see cref="NbdOptionOutcome.Transmission"/>.</summary>
    public NbdNegotiatedExport? Export { get; private set; }

    /// <summary>Applies the client flags; unknown flags end the connection, as the spec requires.</summary>
    public void AcceptClientFlags(uint flags)
    {
        if ((flags & ~NbdWire.KnownClientFlags) != 0)
        {
            NbdProtocolException.Throw(NbdConnectionEndReason.UnsupportedClientFlags, $"client flags 0x{flags:x} include unknown bits");
        }

        _noZeroes = (flags & NbdWire.ClientFlagNoZeroes) != 0;
        _fixedNewstyle = (flags & NbdWire.ClientFlagFixedNewstyle) != 0;
    }

    public ValueTask<NbdOptionOutcome> HandleAsync(NbdOptionHeader header, ReadOnlySequence<byte> data)
    {
        if (_stopping.IsCancellationRequested && header.Option != NbdWire.OptAbort)
        {
            return RefuseAsync(header.Option, NbdWire.RepErrShutdown, "the server is shutting down");
        }

        if (NeedsTls(header.Option))
        {
            return RefuseWithoutTlsAsync(header.Option);
        }

        return header.Option switch
        {
            NbdWire.OptExportName => ExportNameAsync(data),
            NbdWire.OptAbort => AbortAsync(),
            NbdWire.OptList => ListAsync(data),
            NbdWire.OptStartTls => StartTlsAsync(data),
            NbdWire.OptInfo or NbdWire.OptGo => InfoOrGoAsync(header.Option, data),
            NbdWire.OptStructuredReply => StructuredReplyAsync(data),
            NbdWire.OptListMetaContext => ListMetaContextAsync(data),
            NbdWire.OptSetMetaContext => SetMetaContextAsync(data),
            _ => RefuseAsync(header.Option, NbdWire.RepErrUnsup, $"option {header.Option} is not supported"),
        };
    }

    /// <summary>Option data longer than the server accepts: refused, and the caller skips the data.</summary>
    public ValueTask<NbdOptionOutcome> RefuseOversizedAsync(NbdOptionHeader header) => NeedsTls(header.Option)
        ? RefuseWithoutTlsAsync(header.Option)
        : RefuseAsync(header.Option, NbdWire.RepErrTooBig, $"option data of {header.Length} bytes exceeds the {NbdWire.MaxOptionDataLength} accepted");

    /// <summary>NBD_OPT_EXPORT_NAME cannot return an error: a name that cannot be served ends the connection.</summary>
    private async ValueTask<NbdOptionOutcome> ExportNameAsync(ReadOnlySequence<byte> data)
    {
        var name = NbdOptionParser.ParseExportName(data, out var error);
        if (name is null)
        {
            NbdProtocolException.Throw(NbdConnectionEndReason.ExportRefused, $"NBD_OPT_EXPORT_NAME: {error}");
        }

        if (!_catalog.TryAttach(name, out var attachment, out var refusal, out var message))
        {
            NbdProtocolException.Throw(NbdConnectionEndReason.ExportRefused, $"NBD_OPT_EXPORT_NAME '{name}': {refusal} {message}");
        }

        var place = TakePlace(name, attachment);
        if (place is null)
        {
            attachment.Dispose();
            NbdProtocolException.Throw(NbdConnectionEndReason.ExportRefused, $"NBD_OPT_EXPORT_NAME: {_exportLimit!.FullMessage(name)}");
        }

        attachment = place;

        try
        {
            var device = attachment.Device;
            var policy = new NbdTransmissionPolicy(
                NbdTransmissionPolicy.FlagsFor(device.Features, _structuredReplies), _structuredReplies,
                BaseAllocation: _structuredReplies && _metaContextExport == name, Alignment: 1);
            NbdOptionReplies.WriteExportNameReply(_output, (ulong)device.Size, policy.TransmissionFlags, _noZeroes);
            await FlushAsync();
            Export = new NbdNegotiatedExport(name, attachment, policy);
            return NbdOptionOutcome.Transmission;
        }
        catch
        {
            attachment.Dispose();
            throw;
        }
    }

    /// <summary>NBD_OPT_ABORT: acknowledged (any data ignored, as the spec asks), then the connection closes.</summary>
    private async ValueTask<NbdOptionOutcome> AbortAsync()
    {
        NbdOptionReplies.WriteAck(_output, NbdWire.OptAbort);
        try
        {
            await _output.FlushAsync();
        }
        catch (IOException)
        {
            // A client may close right after sending ABORT without reading the reply; the spec allows it.
        }

        return NbdOptionOutcome.Abort;
    }

    private async ValueTask<NbdOptionOutcome> ListAsync(ReadOnlySequence<byte> data)
    {
        if (!data.IsEmpty)
        {
            return await RefuseAsync(NbdWire.OptList, NbdWire.RepErrInvalid, "NBD_OPT_LIST takes no data");
        }

        foreach (var export in _catalog.ListExports())
        {
            NbdOptionReplies.WriteServer(_output, NbdWire.OptList, export.Name, export.Description);
        }

        NbdOptionReplies.WriteAck(_output, NbdWire.OptList);
        await FlushAsync();
        return NbdOptionOutcome.Continue;
    }

    /// <summary>
    /// NBD_OPT_INFO and NBD_OPT_GO: INFO_EXPORT always; INFO_NAME and INFO_DESCRIPTION when asked;
    /// INFO_BLOCK_SIZE always, since the maximum is enforced for every client. A client that asks for
    /// block sizes in GO is held to the minimum block size as well.
    /// </summary>
    private async ValueTask<NbdOptionOutcome> InfoOrGoAsync(uint option, ReadOnlySequence<byte> data)
    {
        if (NbdOptionParser.ParseInfo(data, out var error) is not { } info)
        {
            return await RefuseAsync(option, NbdWire.RepErrInvalid, error!);
        }

        if (!_catalog.TryAttach(info.ExportName, out var attachment, out var refusal, out var message))
        {
            return await RefuseAttachAsync(option, info.ExportName, refusal, message);
        }

        if (option == NbdWire.OptGo)
        {
            if (TakePlace(info.ExportName, attachment) is not { } place)
            {
                attachment.Dispose();
                return await RefuseAsync(option, NbdWire.RepErrPolicy, _exportLimit!.FullMessage(info.ExportName));
            }

            attachment = place;
        }

        var keep = false;
        try
        {
            var device = attachment.Device;
            var size = device.Size;
            var minimum = NbdTransmissionPolicy.MinimumBlockSizeFor(size);
            var sizesNegotiated = option == NbdWire.OptGo && info.Requests.HasFlag(NbdInfoRequests.BlockSize);
            var policy = new NbdTransmissionPolicy(
                NbdTransmissionPolicy.FlagsFor(device.Features, _structuredReplies), _structuredReplies,
                BaseAllocation: _structuredReplies && _metaContextExport == info.ExportName,
                Alignment: sizesNegotiated ? minimum : 1);

            NbdOptionReplies.WriteInfoExport(_output, option, (ulong)size, policy.TransmissionFlags);
            if (info.Requests.HasFlag(NbdInfoRequests.Name))
            {
                NbdOptionReplies.WriteInfoString(_output, option, NbdWire.InfoName, info.ExportName);
            }

            if (info.Requests.HasFlag(NbdInfoRequests.Description) && DescriptionOf(info.ExportName) is { } description)
            {
                NbdOptionReplies.WriteInfoString(_output, option, NbdWire.InfoDescription, description);
            }

            NbdOptionReplies.WriteInfoBlockSize(_output, option, minimum, NbdWire.PreferredBlockSize, NbdWire.MaximumBlockSize);
            NbdOptionReplies.WriteAck(_output, option);
            await FlushAsync();
            if (option != NbdWire.OptGo)
            {
                return NbdOptionOutcome.Continue;
            }

            Export = new NbdNegotiatedExport(info.ExportName, attachment, policy);
            keep = true;
            return NbdOptionOutcome.Transmission;
        }
        finally
        {
            if (!keep)
            {
                attachment.Dispose();
            }
        }
    }

    private async ValueTask<NbdOptionOutcome> StructuredReplyAsync(ReadOnlySequence<byte> data)
    {
        if (!data.IsEmpty)
        {
            return await RefuseAsync(NbdWire.OptStructuredReply, NbdWire.RepErrInvalid, "NBD_OPT_STRUCTURED_REPLY takes no data");
        }

        _structuredReplies = true;
        NbdOptionReplies.WriteAck(_output, NbdWire.OptStructuredReply);
        await FlushAsync();
        return NbdOptionOutcome.Continue;
    }

    /// <summary>
    /// Lists base:allocation for no query, for the <c>base:</c> wildcard or for itself; queries in other
    /// namespaces and unknown <c>base:</c> leaves match nothing. Context ids in a list are zero.
    /// </summary>
    private async ValueTask<NbdOptionOutcome> ListMetaContextAsync(ReadOnlySequence<byte> data)
    {
        const uint option = NbdWire.OptListMetaContext;
        if (NbdOptionParser.ParseMetaContext(data, out var error) is not { } request)
        {
            return await RefuseAsync(option, NbdWire.RepErrInvalid, error!);
        }

        if (ExportSupportsBlockStatus(request.ExportName, out var refusal, out var message) is not { } supported)
        {
            return await RefuseAttachAsync(option, request.ExportName, refusal, message);
        }

        var matches = request.Queries.Count == 0
            || request.Queries.Any(q => q is NbdWire.BaseNamespace or NbdWire.BaseAllocation);
        if (supported && matches)
        {
            NbdOptionReplies.WriteMetaContext(_output, option, 0, NbdWire.BaseAllocation);
        }

        NbdOptionReplies.WriteAck(_output, option);
        await FlushAsync();
        return NbdOptionOutcome.Continue;
    }

    /// <summary>
    /// Selects base:allocation when asked for by its full name (the <c>base:</c> wildcard selects nothing here).
    /// The selection replaces any earlier one, even when this option fails, and only counts for the export named.
    /// </summary>
    private async ValueTask<NbdOptionOutcome> SetMetaContextAsync(ReadOnlySequence<byte> data)
    {
        const uint option = NbdWire.OptSetMetaContext;
        _metaContextExport = null;
        if (!_structuredReplies)
        {
            return await RefuseAsync(option, NbdWire.RepErrInvalid, "NBD_OPT_SET_META_CONTEXT needs structured replies first");
        }

        if (NbdOptionParser.ParseMetaContext(data, out var error) is not { } request)
        {
            return await RefuseAsync(option, NbdWire.RepErrInvalid, error!);
        }

        if (ExportSupportsBlockStatus(request.ExportName, out var refusal, out var message) is not { } supported)
        {
            return await RefuseAttachAsync(option, request.ExportName, refusal, message);
        }

        if (supported && request.Queries.Contains(NbdWire.BaseAllocation))
        {
            NbdOptionReplies.WriteMetaContext(_output, option, NbdWire.BaseAllocationContextId, NbdWire.BaseAllocation);
            _metaContextExport = request.ExportName;
        }

        NbdOptionReplies.WriteAck(_output, option);
        await FlushAsync();
        return NbdOptionOutcome.Continue;
    }

    /// <summary>The attachment holding a place among the export's connections; null when the export is full.</summary>
    private IExportAttachment? TakePlace(string name, IExportAttachment attachment) =>
        _exportLimit is null ? attachment : _exportLimit.TryEnter(name, attachment);

    /// <summary>Whether the export reports allocation; null when it cannot be attached.</summary>
    private bool? ExportSupportsBlockStatus(string name, out AttachRefusal refusal, out string? message)
    {
        if (!_catalog.TryAttach(name, out var attachment, out refusal, out message))
        {
            return null;
        }

        using (attachment)
        {
            return attachment.Device.Features.HasFlag(DeviceFeatures.BlockStatus);
        }
    }

    private string? DescriptionOf(string name)
    {
        foreach (var export in _catalog.ListExports())
        {
            if (export.Name == name)
            {
                return export.Description;
            }
        }

        return null;
    }

    private ValueTask<NbdOptionOutcome> RefuseAttachAsync(uint option, string name, AttachRefusal refusal, string? message)
    {
        var reply = refusal == AttachRefusal.UnknownExport ? NbdWire.RepErrUnknown
            : _stopping.IsCancellationRequested ? NbdWire.RepErrShutdown
            : NbdWire.RepErrPolicy;
        var text = message ?? (refusal == AttachRefusal.UnknownExport ? $"no export named '{name}'" : $"export '{name}' is not available");
        return RefuseAsync(option, reply, text);
    }

    private async ValueTask<NbdOptionOutcome> RefuseAsync(uint option, uint reply, string message)
    {
        NbdLog.OptionRefused(_logger, _connection, NbdErrors.OptionName(option), NbdErrors.ReplyName(reply), message);
        NbdOptionReplies.WriteError(_output, option, reply, message);
        await FlushAsync();
        return NbdOptionOutcome.Continue;
    }

    private async ValueTask FlushAsync()
    {
        var result = await _output.FlushAsync();
        if (result.IsCompleted || result.IsCanceled)
        {
            NbdProtocolException.Throw(NbdConnectionEndReason.ClientClosed, "the client stopped reading during the handshake");
        }
    }
}

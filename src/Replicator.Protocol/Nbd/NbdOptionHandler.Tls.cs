using System.Buffers;
using System.IO.Pipelines;

namespace Replicator.Protocol.Nbd;

/// <summary>
/// TLS in the handshake (the spec's "TLS support"): with <see cref="NbdTlsMode.Required"/> every option but STARTTLS
/// and ABORT is refused with NBD_REP_ERR_TLS_REQD until TLS is up, and NBD_OPT_EXPORT_NAME, which cannot be refused,
/// ends the connection. STARTTLS is acknowledged in clear; the caller then runs the TLS handshake and calls
/// <see cref="TlsStarted"/>, which forgets what the options before it negotiated.
/// </summary>
internal sealed partial class NbdOptionHandler
{
    /// <summary>
    /// The TLS handshake that followed STARTTLS succeeded: replies now go to <paramref name="output"/>, and the state
    /// negotiated in clear is forgotten, as the spec requires (structured replies, the meta context).
    /// </summary>
    public void TlsStarted(PipeWriter output)
    {
        _output = output;
        UsingTls = true;
        _structuredReplies = false;
        _metaContextExport = null;
    }

    /// <summary>FORCEDTLS: before TLS is up, only STARTTLS and ABORT are answered with anything but NBD_REP_ERR_TLS_REQD.</summary>
    private bool NeedsTls(uint option) =>
        _tlsMode == NbdTlsMode.Required && !UsingTls && option is not (NbdWire.OptStartTls or NbdWire.OptAbort);

    /// <summary>NBD_REP_ERR_TLS_REQD; NBD_OPT_EXPORT_NAME cannot be answered with an error, so it ends the connection.</summary>
    private ValueTask<NbdOptionOutcome> RefuseWithoutTlsAsync(uint option)
    {
        if (option == NbdWire.OptExportName)
        {
            NbdProtocolException.Throw(NbdConnectionEndReason.TlsRequired, "NBD_OPT_EXPORT_NAME before NBD_OPT_STARTTLS on a server that requires TLS");
        }

        return RefuseAsync(option, NbdWire.RepErrTlsReqd, "this server requires TLS: send NBD_OPT_STARTTLS first");
    }

    /// <summary>
    /// Acknowledged in clear when TLS is offered and not yet up; the caller runs the TLS handshake next. A server
    /// without TLS refuses it by policy (as nbdkit <c>--tls=off</c> does); a second one, or one from a client that
    /// did not set the fixed newstyle flag, is invalid.
    /// </summary>
    private async ValueTask<NbdOptionOutcome> StartTlsAsync(ReadOnlySequence<byte> data)
    {
        const uint option = NbdWire.OptStartTls;
        if (!data.IsEmpty)
        {
            return await RefuseAsync(option, NbdWire.RepErrInvalid, "NBD_OPT_STARTTLS takes no data");
        }

        if (_tlsMode == NbdTlsMode.Off)
        {
            return await RefuseAsync(option, NbdWire.RepErrPolicy, "TLS is not offered by this server");
        }

        if (!_fixedNewstyle)
        {
            // The spec keeps a client that did not answer with fixed newstyle out of TLS (as nbdkit does).
            return await RefuseAsync(option, NbdWire.RepErrInvalid, "NBD_OPT_STARTTLS needs the fixed newstyle handshake (client flag NBD_FLAG_C_FIXED_NEWSTYLE)");
        }

        if (UsingTls)
        {
            return await RefuseAsync(option, NbdWire.RepErrInvalid, "TLS is already in use on this connection");
        }

        NbdOptionReplies.WriteAck(_output, option);
        await FlushAsync();
        return NbdOptionOutcome.StartTls;
    }
}

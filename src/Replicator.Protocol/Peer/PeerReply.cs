using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Peer;

/// <summary>
/// The peer's answer to a request sent with <see cref="PeerConnection.SendRequestAsync"/>.
/// A reply that carries data (a read) holds it in a pooled buffer: dispose the reply when done.
/// </summary>
internal sealed class PeerReply : IDisposable
{
    private readonly PeerPayload? _payload;

    public PeerReply(ReplyStatus status, string message, PeerPayload? payload, Reply? body = null)
    {
        Status = status;
        Message = message;
        _payload = payload;
        Body = body ?? new Reply { Status = status, Message = message };
    }

    /// <summary>The whole reply message, with the typed result of requests that have one.</summary>
    public Reply Body { get; }

    public ReplyStatus Status { get; }

    /// <summary>The peer's explanation when <see cref="Status"/> is not OK; empty otherwise.</summary>
    public string Message { get; }

    public bool IsOk => Status == ReplyStatus.Ok;

    /// <summary>Data that came with the reply, checksum verified; empty when there is none.</summary>
    public ReadOnlyMemory<byte> Payload => _payload?.Data ?? ReadOnlyMemory<byte>.Empty;

    /// <summary>The block checksums that came with <see cref="Payload"/> (each already checked against its block), or empty.</summary>
    public ReadOnlyMemory<byte> BlockChecksums => _payload?.BlockChecksums ?? ReadOnlyMemory<byte>.Empty;

    /// <summary>Throws <see cref="PeerRequestFailedException"/> unless the status is OK.</summary>
    public void ThrowIfFailed()
    {
        if (!IsOk)
        {
            throw new PeerRequestFailedException(Status, Message);
        }
    }

    public void Dispose() => _payload?.Dispose();
}

/// <summary>The peer answered a request with a status other than OK.</summary>
internal sealed class PeerRequestFailedException : IOException
{
    public PeerRequestFailedException(ReplyStatus status, string message)
        : base($"The peer answered {status}: {message}")
    {
        Status = status;
    }

    public ReplyStatus Status { get; }
}

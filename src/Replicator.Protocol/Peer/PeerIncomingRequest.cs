using Replicator.Protocol.Peer.Messages;

namespace Replicator.Protocol.Peer;

/// <summary>A request received from the peer, handed to <see cref="IPeerRequestHandler"/>.</summary>
internal sealed class PeerIncomingRequest
{
    private readonly PeerConnection _connection;
    private readonly PeerPayload? _payload;
    private long _window;
    private int _replied;

    /// <param name="window">The payload's share of the connection's receive window, given back once the request is replied to.</param>
    internal PeerIncomingRequest(PeerConnection connection, Envelope header, PeerPayload? payload, long window = 0)
    {
        _connection = connection;
        Header = header;
        _payload = payload;
        _window = window;
    }

    /// <summary>The connection the request arrived on (the node's pairing state is per connection).</summary>
    public PeerConnection Connection => _connection;

    /// <summary>The request: its <see cref="Envelope.BodyCase"/> says which, e.g. <see cref="Envelope.Write"/>.</summary>
    public Envelope Header { get; }

    public ulong RequestId => Header.RequestId;

    /// <summary>The request's data (a write's blocks), checksum verified; valid until the handler's task completes.</summary>
    public ReadOnlyMemory<byte> Payload => _payload?.Data ?? ReadOnlyMemory<byte>.Empty;

    /// <summary>The block checksums that came with <see cref="Payload"/> (each already checked against its block), or empty.</summary>
    public ReadOnlyMemory<byte> BlockChecksums => _payload?.BlockChecksums ?? ReadOnlyMemory<byte>.Empty;

    public bool HasReplied => Volatile.Read(ref _replied) != 0;

    /// <summary>
    /// Sends the reply. <paramref name="payload"/> is data for requests that return some (a read);
    /// it is copied out before this completes, so the caller may reuse its buffer afterwards.
    /// </summary>
    /// <exception cref="InvalidOperationException">The request was already replied to.</exception>
    /// <exception cref="PeerConnectionClosedException">The connection ended; the peer will never see the reply.</exception>
    /// <exception cref="ArgumentException">The payload is larger than a frame may carry; the request still awaits its reply.</exception>
    public ValueTask ReplyAsync(ReplyStatus status, string? message = null, ReadOnlyMemory<byte> payload = default) =>
        ReplyAsync(status, message, payload, ReadOnlyMemory<byte>.Empty);

    /// <summary>Sends the reply with data and their block checksums (8 bytes per 4 KiB block), which the peer checks and keeps.</summary>
    public ValueTask ReplyAsync(ReplyStatus status, string? message, ReadOnlyMemory<byte> payload, ReadOnlyMemory<byte> blockChecksums)
    {
        _connection.ValidateReplyPayload(payload, blockChecksums);
        if (Interlocked.Exchange(ref _replied, 1) != 0)
        {
            throw new InvalidOperationException($"Peer request {RequestId} ({Header.BodyCase}) was already replied to.");
        }

        ReleaseWindow();
        return _connection.SendReplyAsync(RequestId, status, message, payload, blockChecksums);
    }

    /// <summary>Sends a reply with a typed result (<see cref="Reply"/>'s result field); its status is normally OK.</summary>
    public ValueTask ReplyAsync(Reply reply, ReadOnlyMemory<byte> payload = default)
    {
        ArgumentNullException.ThrowIfNull(reply);
        _connection.ValidateReplyPayload(payload);
        if (Interlocked.Exchange(ref _replied, 1) != 0)
        {
            throw new InvalidOperationException($"Peer request {RequestId} ({Header.BodyCase}) was already replied to.");
        }

        ReleaseWindow();
        return _connection.SendReplyAsync(RequestId, reply, payload);
    }

    internal void ReleasePayload()
    {
        ReleaseWindow();
        _payload?.Dispose();
    }

    /// <summary>
    /// Gives the payload's share of the receive window back when the reply goes out, not when the
    /// handler's task ends: the peer reuses its send window as soon as it has the reply, so the
    /// receive window must be free by then, or this node's receive loop would wait for no reason.
    /// </summary>
    private void ReleaseWindow()
    {
        if (Interlocked.Exchange(ref _window, 0) is var window and > 0)
        {
            _connection.ReleaseReceiveWindow(window);
        }
    }
}

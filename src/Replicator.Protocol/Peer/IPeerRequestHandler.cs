namespace Replicator.Protocol.Peer;

/// <summary>
/// What a node does with the requests its peer sends. The connection calls it for every
/// request that passed the edge checks (frame, payload checksum, payload length), so a
/// handler never sees corrupted or misframed data.
/// </summary>
/// <remarks>
/// <para>
/// Calls are concurrent: the connection starts each request as it arrives, in arrival order,
/// without waiting for the previous ones, and replies may go out in any order. A handler
/// must not block the calling thread (it runs on the receive loop until its first await).
/// </para>
/// <para>
/// Each request gets exactly one reply, through <see cref="PeerIncomingRequest.ReplyAsync"/>.
/// A handler that throws or returns without replying gets an IO_ERROR reply sent on its
/// behalf, and the failure is logged. A write, trim or write-zeroes is replied to once
/// applied (durable first with FUA); a FLUSH only once every write the node had replied to
/// before the flush arrived is durable.
/// </para>
/// <para>
/// The request's payload lives until the returned task completes. The cancellation token
/// fires when the connection ends; replies are then no longer possible.
/// </para>
/// </remarks>
internal interface IPeerRequestHandler
{
    ValueTask HandleAsync(PeerIncomingRequest request, CancellationToken cancellationToken);
}

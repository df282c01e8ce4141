using Replicator.Core.Devices;

namespace Replicator.Core.Replication;

/// <summary>
/// The peer's replica of one volume, as the local replicated volume reaches it over the peer
/// link. Implemented by the node over the peer protocol (and in memory by tests), so the
/// replication logic here never touches a socket.
/// </summary>
/// <remarks>
/// Every call fails with <see cref="PeerUnavailableException"/> when the link is down or goes
/// down before the peer answered — the change may or may not have been applied there — and
/// with <see cref="PeerFailedException"/> when the peer answered that it could not do it.
/// </remarks>
internal interface IPeerVolume
{
    /// <summary>Applies a change this node ordered (it owns the volume's write order).</summary>
    ValueTask ReplicateAsync(WriteOp op, CancellationToken cancellationToken);

    /// <summary>Hands a change to the peer, which owns the write order: it applies it on both replicas, then answers.</summary>
    ValueTask ForwardAsync(WriteOp op, CancellationToken cancellationToken);

    /// <summary>Sends resync data (or a trim for a hole) that makes the range identical on the peer.</summary>
    ValueTask ResyncAsync(WriteOp op, CancellationToken cancellationToken);

    ValueTask FlushAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Reads from the peer's replica (ranges this replica does not hold up to date, blocks it repairs). The peer
    /// checks every block against its own checksum first and fails the read when one is damaged there. For a
    /// block-aligned read <paramref name="checksums"/> (8 bytes per block, else empty) receives the peer's checksum
    /// of each block, already checked against the data that arrived.
    /// </summary>
    ValueTask ReadAsync(long offset, Memory<byte> destination, Memory<byte> checksums, CancellationToken cancellationToken);

    /// <summary>Tells the resync target that it holds everything: it takes <paramref name="source"/>'s data set and is up to date.</summary>
    ValueTask CompleteResyncAsync(GenerationIds source, CancellationToken cancellationToken);

    /// <summary>The peer's hash and status of each region of <paramref name="regionSize"/> bytes over the range (see <see cref="RegionSums"/>).</summary>
    ValueTask<RegionSums> ChecksumsAsync(long offset, long length, int regionSize, CancellationToken cancellationToken);
}

/// <summary>The peer link is down: the request may or may not have reached the peer.</summary>
internal sealed class PeerUnavailableException(string message, Exception? innerException = null) : IOException(message, innerException);

/// <summary>The peer answered that it could not do what was asked.</summary>
internal sealed class PeerFailedException(StorageError error, string message) : IOException(message)
{
    public StorageError Error { get; } = error;
}

/// <summary>A forwarded write reached a node that no longer orders the volume's writes: the owner moved; look again and resend.</summary>
internal sealed class NotOwnerException(string message) : IOException(message);

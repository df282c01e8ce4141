using Replicator.Core.Replication;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Node.Replication;

/// <summary>The peer's replica of one volume, reached over the current peer connection.</summary>
internal sealed class PeerVolumeChannel(PeerConnection connection, Guid volumeId) : IPeerVolume
{
    private readonly string _id = volumeId.ToString();

    /// <summary>The connection this channel sends on.</summary>
    public PeerConnection Connection => connection;

    public ValueTask ReplicateAsync(WriteOp op, CancellationToken cancellationToken) => SendChangeAsync(op, WriteKind.Replicate, cancellationToken);

    public ValueTask ForwardAsync(WriteOp op, CancellationToken cancellationToken) => SendChangeAsync(op, WriteKind.Forward, cancellationToken);

    public ValueTask ResyncAsync(WriteOp op, CancellationToken cancellationToken) => SendChangeAsync(op, WriteKind.Resync, cancellationToken);

    public async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        using var reply = await SendAsync(new Envelope { Flush = new FlushRequest { VolumeId = _id } }, default, cancellationToken);
    }

    public async ValueTask ReadAsync(long offset, Memory<byte> destination, Memory<byte> checksums, CancellationToken cancellationToken)
    {
        var request = new ReadRequest { VolumeId = _id, Offset = (ulong)offset, Length = (uint)destination.Length, BlockChecksums = !checksums.IsEmpty };
        using var reply = await SendAsync(new Envelope { Read = request }, default, cancellationToken);
        if (reply.Payload.Length != destination.Length || reply.BlockChecksums.Length != checksums.Length)
        {
            throw new PeerFailedException(Core.Devices.StorageError.Io,
                $"the peer answered a read of {destination.Length} bytes ({checksums.Length} bytes of block checksums) with {reply.Payload.Length} ({reply.BlockChecksums.Length})");
        }

        reply.Payload.CopyTo(destination);
        reply.BlockChecksums.CopyTo(checksums);
    }

    public async ValueTask CompleteResyncAsync(Core.Replication.GenerationIds source, CancellationToken cancellationToken)
    {
        using var reply = await SendAsync(new Envelope { ResyncComplete = new ResyncCompleteRequest { VolumeId = _id, Generation = PeerMessages.ToProto(source) } }, default, cancellationToken);
    }

    public async ValueTask<RegionSums> ChecksumsAsync(long offset, long length, int regionSize, CancellationToken cancellationToken)
    {
        using var reply = await SendAsync(new Envelope
        {
            RegionChecksums = new RegionChecksumRequest { VolumeId = _id, Offset = (ulong)offset, Length = (ulong)length, RegionSize = (uint)regionSize },
        }, default, cancellationToken);
        try
        {
            return RegionSums.Decode(reply.Payload.Span, RegionSums.CountFor(length, regionSize));
        }
        catch (InvalidDataException e)
        {
            throw new PeerFailedException(Core.Devices.StorageError.Io, $"{connection.PeerName} sent unusable region checksums: {e.Message}");
        }
    }

    private async ValueTask SendChangeAsync(WriteOp op, WriteKind kind, CancellationToken cancellationToken)
    {
        using var reply = await SendAsync(PeerMessages.ToEnvelope(volumeId, op, kind), op.Data, cancellationToken, op.Checksums);
    }

    /// <summary>Sends a request; a connection that ends is <see cref="PeerUnavailableException"/>, a refusal <see cref="PeerFailedException"/>.</summary>
    private async Task<PeerReply> SendAsync(Envelope request, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken, ReadOnlyMemory<byte> blockChecksums = default)
    {
        PeerReply reply;
        try
        {
            reply = await connection.SendRequestAsync(request, payload, blockChecksums, cancellationToken);
        }
        catch (PeerConnectionClosedException e)
        {
            throw new PeerUnavailableException($"the connection to {connection.PeerName} ended: {e.End}", e);
        }
        catch (InvalidOperationException e) when (connection.End is not null)
        {
            throw new PeerUnavailableException($"the connection to {connection.PeerName} ended: {connection.End}", e);
        }

        if (!reply.IsOk)
        {
            var status = reply.Status;
            var message = reply.Message;
            reply.Dispose();
            throw status switch
            {
                ReplyStatus.ShuttingDown => new PeerUnavailableException($"{connection.PeerName} is shutting down: {message}"),
                ReplyStatus.NotOwner => new NotOwnerException($"{connection.PeerName}: {message}"),
                _ => new PeerFailedException(PeerMessages.ToStorageError(status), $"{connection.PeerName}: {message}"),
            };
        }

        return reply;
    }
}

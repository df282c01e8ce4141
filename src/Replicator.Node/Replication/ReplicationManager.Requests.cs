using System.Buffers;
using Replicator.Core.Devices;
using Replicator.Core.Replication;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Node.Replication;

/// <summary>
/// The peer's requests: each is first checked against the pairing (<see cref="PeerRequestGuard"/>), then
/// served by one method per kind and answered with a reply whose status says what happened.
/// </summary>
internal sealed partial class ReplicationManager
{
    public async ValueTask HandleAsync(PeerIncomingRequest request, CancellationToken cancellationToken)
    {
        try
        {
            await DispatchAsync(request, cancellationToken);
        }
        catch (BlockDeviceException e)
        {
            await TryReplyAsync(request, PeerMessages.ToStatus(e.Error), e.Message);
        }
        catch (PeerFailedException e)
        {
            await TryReplyAsync(request, PeerMessages.ToStatus(e.Error), e.Message);
        }
        catch (PeerUnavailableException e)
        {
            await TryReplyAsync(request, ReplyStatus.IoError, e.Message);
        }
        catch (NotOwnerException e)
        {
            await TryReplyAsync(request, ReplyStatus.NotOwner, e.Message);
        }
        catch (UnknownVolumeException e)
        {
            await TryReplyAsync(request, ReplyStatus.UnknownVolume, e.Message);
        }
        catch (InvalidDataException e)
        {
            await TryReplyAsync(request, ReplyStatus.Invalid, e.Message);
        }
        catch (FormatException e)
        {
            await TryReplyAsync(request, ReplyStatus.Invalid, e.Message);
        }
        catch (PairingRejectedException e)
        {
            await TryReplyAsync(request, ReplyStatus.Invalid, e.Message);
        }
    }

    private async ValueTask DispatchAsync(PeerIncomingRequest request, CancellationToken ct)
    {
        var header = request.Header;
        if (!await AdmitAsync(request, PeerRequestGuard.Check(header, ViewOf(request.Connection), PeerWire.DefaultMaxPayloadLength)))
        {
            return;
        }

        switch (header.BodyCase)
        {
            case Envelope.BodyOneofCase.Write:
                var write = header.Write;
                await ApplyChangeAsync(write.VolumeId, write.Kind,
                    new WriteOp(WriteOpKind.Write, (long)write.Offset, write.Length, request.Payload, PeerMessages.FromProto(write.Flags), request.BlockChecksums), ct);
                break;
            case Envelope.BodyOneofCase.Trim:
                var trim = header.Trim;
                await ApplyChangeAsync(trim.VolumeId, trim.Kind, WriteOp.Trim((long)trim.Offset, (long)trim.Length, PeerMessages.FromProto(trim.Flags)), ct);
                break;
            case Envelope.BodyOneofCase.WriteZeroes:
                var zeroes = header.WriteZeroes;
                await ApplyChangeAsync(zeroes.VolumeId, zeroes.Kind, WriteOp.WriteZeroes((long)zeroes.Offset, (long)zeroes.Length, PeerMessages.FromProto(zeroes.Flags)), ct);
                break;
            case Envelope.BodyOneofCase.Flush:
                await FlushLocalAsync(header.Flush.VolumeId, ct);
                break;
            case Envelope.BodyOneofCase.Read:
                await ServeReadAsync(request, header.Read, ct);
                return;
            case Envelope.BodyOneofCase.RegionChecksums:
                var sums = header.RegionChecksums;
                var checksums = await RequireVolume(sums.VolumeId).ChecksumsAsync((long)sums.Offset, (long)sums.Length, (int)sums.RegionSize, ct);
                await request.ReplyAsync(ReplyStatus.Ok, null, checksums.Encode());
                return;
            case Envelope.BodyOneofCase.ResyncComplete:
                // The source may finish before this side has attached its pairing: complete after it.
                var completed = RequireVolume(header.ResyncComplete.VolumeId);
                await completed.WaitForPairingAsync(ct);
                if (!await AdmitAsync(request, PeerRequestGuard.CheckResyncSource(header.ResyncComplete.VolumeId, ViewOf(request.Connection))))
                {
                    return;
                }

                await completed.CompleteResyncAsTargetAsync(PeerMessages.FromProto(header.ResyncComplete.Generation), ct);
                break;
            case Envelope.BodyOneofCase.VolumeConnect:
                await HandleVolumeConnectAsync(request, header.VolumeConnect, ct);
                return;
            case Envelope.BodyOneofCase.BitmapPush:
                HandleBitmapPush(request, header.BitmapPush);
                break;
            case Envelope.BodyOneofCase.BitmapPull:
                await HandleBitmapPullAsync(request, header.BitmapPull);
                return;
            case Envelope.BodyOneofCase.VolumeStart:
                await HandleVolumeStartAsync(header.VolumeStart);
                break;
            case Envelope.BodyOneofCase.VolumePrefer:
                var repair = HandleVolumePrefer(header.VolumePrefer);
                await request.ReplyAsync(ReplyStatus.Ok);
                if (repair is not null)
                {
                    PairInBackground(repair, ct);
                }

                return;
            case Envelope.BodyOneofCase.VolumeCreate:
                var created = HandlePeerCreate(header.VolumeCreate);
                await request.ReplyAsync(ReplyStatus.Ok);
                if (created is not null)
                {
                    PairInBackground(created, ct);
                }

                return;
            case Envelope.BodyOneofCase.VolumeDelete:
                HandlePeerDelete(header.VolumeDelete);
                break;
            case Envelope.BodyOneofCase.DiscardReplica:
                HandleDiscardReplica(header.DiscardReplica);
                break;
            case Envelope.BodyOneofCase.VolumeRepair:
                HandleVolumeRepair(header.VolumeRepair, ct);
                break;
            case Envelope.BodyOneofCase.VolumeResize:
                HandlePeerResize(header.VolumeResize);
                break;
            default:
                await request.ReplyAsync(ReplyStatus.NotSupported, $"node {LocalName} does not handle {header.BodyCase} requests");
                return;
        }

        await request.ReplyAsync(ReplyStatus.Ok);
    }

    private async ValueTask ApplyChangeAsync(string volumeId, WriteKind kind, WriteOp op, CancellationToken ct)
    {
        var volume = RequireVolume(volumeId);
        if (kind == WriteKind.Forward)
        {
            await volume.OrderForwardedAsync(op, ct);
        }
        else
        {
            await volume.ApplyFromPeerAsync(op, ct, resync: kind == WriteKind.Resync);
        }
    }

    private async ValueTask FlushLocalAsync(string volumeId, CancellationToken ct)
    {
        if (volumeId.Length == 0)
        {
            _pool.Flush();
            return;
        }

        await RequireVolume(volumeId).FlushForPeerAsync(ct);
    }

    private async ValueTask ServeReadAsync(PeerIncomingRequest request, ReadRequest read, CancellationToken ct)
    {
        var volume = RequireVolume(read.VolumeId);
        var length = (int)read.Length;
        var buffer = ArrayPool<byte>.Shared.Rent(length);
        var sumBytes = read.BlockChecksums ? length / Core.Hashing.BlockChecksum.BlockSize * Core.Hashing.BlockChecksum.Size : 0;
        var sums = ArrayPool<byte>.Shared.Rent(sumBytes);
        try
        {
            await volume.ReadForPeerAsync((long)read.Offset, buffer.AsMemory(0, length), sums.AsMemory(0, sumBytes), ct);
            await request.ReplyAsync(ReplyStatus.Ok, null, buffer.AsMemory(0, length), sums.AsMemory(0, sumBytes));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            ArrayPool<byte>.Shared.Return(sums);
        }
    }

    private ReplicatedVolume RequireVolume(string volumeId)
    {
        if (!Guid.TryParse(volumeId, out var id) || !TryFind(id, out var volume))
        {
            throw new UnknownVolumeException($"node {LocalName} has no volume {volumeId}");
        }

        return volume;
    }

    private async ValueTask TryReplyAsync(PeerIncomingRequest request, ReplyStatus status, string message)
    {
        if (request.HasReplied)
        {
            return;
        }

        try
        {
            await request.ReplyAsync(status, message);
        }
        catch (PeerConnectionClosedException)
        {
        }
    }
}

/// <summary>A request named a volume this node does not have.</summary>
internal sealed class UnknownVolumeException(string message) : IOException(message);

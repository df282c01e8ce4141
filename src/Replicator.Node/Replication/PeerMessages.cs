using Replicator.Core.Devices;
using Replicator.Core.Replication;
using Replicator.Protocol.Peer.Messages;
using ProtoGenerationIds = Replicator.Protocol.Peer.Messages.GenerationIds;

namespace Replicator.Node.Replication;

/// <summary>Conversions between the engine's types and the peer protocol's messages, in one place.</summary>
internal static class PeerMessages
{
    public static ProtoGenerationIds ToProto(Core.Replication.GenerationIds ids)
    {
        var proto = new ProtoGenerationIds { Current = ids.Current, Bitmap = ids.Bitmap };
        proto.History.Add(ids.History0);
        proto.History.Add(ids.History1);
        return proto;
    }

    public static Core.Replication.GenerationIds FromProto(ProtoGenerationIds? proto) => proto is null
        ? Core.Replication.GenerationIds.EmptyReplica
        : new(proto.Current, proto.Bitmap, proto.History.Count > 0 ? proto.History[0] : 0, proto.History.Count > 1 ? proto.History[1] : 0);

    public static DiskState ToProto(ReplicaDiskState state) => (DiskState)(int)state;

    public static ReplicaDiskState FromProto(DiskState state) => (ReplicaDiskState)(int)state;

    public static uint ToProto(IoFlags flags) =>
        ((flags & IoFlags.Fua) != 0 ? (uint)IoFlag.Fua : 0) | ((flags & IoFlags.NoHole) != 0 ? (uint)IoFlag.NoHole : 0);

    public static IoFlags FromProto(uint flags) =>
        ((flags & (uint)IoFlag.Fua) != 0 ? IoFlags.Fua : IoFlags.None) | ((flags & (uint)IoFlag.NoHole) != 0 ? IoFlags.NoHole : IoFlags.None);

    /// <summary>The request envelope that carries a change to the peer.</summary>
    public static Envelope ToEnvelope(Guid volume, WriteOp op, WriteKind kind)
    {
        var id = volume.ToString();
        var flags = ToProto(op.Flags);
        return op.Kind switch
        {
            WriteOpKind.Write => new Envelope { Write = new WriteRequest { VolumeId = id, Offset = (ulong)op.Offset, Length = (uint)op.Length, Flags = flags, Kind = kind } },
            WriteOpKind.Trim => new Envelope { Trim = new TrimRequest { VolumeId = id, Offset = (ulong)op.Offset, Length = (ulong)op.Length, Flags = flags, Kind = kind } },
            _ => new Envelope { WriteZeroes = new WriteZeroesRequest { VolumeId = id, Offset = (ulong)op.Offset, Length = (ulong)op.Length, Flags = flags, Kind = kind } },
        };
    }

    public static ReplyStatus ToStatus(StorageError error) => error switch
    {
        StorageError.NoSpace => ReplyStatus.NoSpace,
        StorageError.OutOfRange => ReplyStatus.OutOfRange,
        StorageError.InvalidArgument => ReplyStatus.Invalid,
        StorageError.NotPermitted => ReplyStatus.NotPermitted,
        StorageError.NotSupported => ReplyStatus.NotSupported,
        StorageError.Shutdown => ReplyStatus.ShuttingDown,
        _ => ReplyStatus.IoError,
    };

    public static StorageError ToStorageError(ReplyStatus status) => status switch
    {
        ReplyStatus.NoSpace => StorageError.NoSpace,
        ReplyStatus.OutOfRange => StorageError.OutOfRange,
        ReplyStatus.Invalid => StorageError.InvalidArgument,
        ReplyStatus.NotPermitted => StorageError.NotPermitted,
        ReplyStatus.NotSupported => StorageError.NotSupported,
        ReplyStatus.ShuttingDown => StorageError.Shutdown,
        _ => StorageError.Io,
    };
}

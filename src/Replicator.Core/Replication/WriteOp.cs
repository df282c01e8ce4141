using Replicator.Core.Devices;

namespace Replicator.Core.Replication;

internal enum WriteOpKind
{
    Write,
    Trim,
    WriteZeroes,
}

/// <summary>
/// One change to a volume's contents — a write, trim or write-zeroes — as the replication layer
/// moves it between the client, the local replica and the peer.
/// </summary>
internal readonly record struct WriteOp(WriteOpKind Kind, long Offset, long Length, ReadOnlyMemory<byte> Data, IoFlags Flags)
{
    public static WriteOp Write(long offset, ReadOnlyMemory<byte> data, IoFlags flags) => new(WriteOpKind.Write, offset, data.Length, data, flags);

    public static WriteOp Trim(long offset, long length, IoFlags flags) => new(WriteOpKind.Trim, offset, length, default, flags);

    public static WriteOp WriteZeroes(long offset, long length, IoFlags flags) => new(WriteOpKind.WriteZeroes, offset, length, default, flags);

    /// <summary>Applies the change to a device.</summary>
    public ValueTask ApplyAsync(IBlockDevice device, CancellationToken cancellationToken = default) => Kind switch
    {
        WriteOpKind.Write => device.WriteAsync(Offset, Data, Flags, cancellationToken),
        WriteOpKind.Trim => device.TrimAsync(Offset, Length, Flags, cancellationToken),
        _ => device.WriteZeroesAsync(Offset, Length, Flags, cancellationToken),
    };

    public override string ToString() => $"{Kind} [{Offset}, +{Length})";
}

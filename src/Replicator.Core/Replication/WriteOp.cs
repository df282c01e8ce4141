using Replicator.Core.Devices;
using Replicator.Core.Hashing;

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
/// <param name="Checksums">
/// For a block-aligned write, one <see cref="BlockChecksum"/> per 4 KiB block (8 bytes each), computed once
/// where the write entered the pair and checked against the data wherever it arrives; empty otherwise
/// (an unaligned write's blocks are checksummed where it is merged into them).
/// </param>
internal readonly record struct WriteOp(WriteOpKind Kind, long Offset, long Length, ReadOnlyMemory<byte> Data, IoFlags Flags, ReadOnlyMemory<byte> Checksums = default)
{
    public static WriteOp Write(long offset, ReadOnlyMemory<byte> data, IoFlags flags) => new(WriteOpKind.Write, offset, data.Length, data, flags);

    public static WriteOp Trim(long offset, long length, IoFlags flags) => new(WriteOpKind.Trim, offset, length, default, flags);

    public static WriteOp WriteZeroes(long offset, long length, IoFlags flags) => new(WriteOpKind.WriteZeroes, offset, length, default, flags);

    /// <summary>Whether this is a write of whole 4 KiB blocks, which carries one checksum per block.</summary>
    public bool IsBlockAligned => Kind == WriteOpKind.Write && Length > 0 && BlockChecksum.IsAligned(Offset, Length);

    /// <summary>Applies the change to a device (the local replica takes the checksums with the data).</summary>
    public ValueTask ApplyAsync(IBlockDevice device, CancellationToken cancellationToken = default) => Kind switch
    {
        WriteOpKind.Write when device is Volumes.ThinVolume thin => thin.WriteAsync(Offset, Data, Checksums, Flags),
        WriteOpKind.Write => device.WriteAsync(Offset, Data, Flags, cancellationToken),
        WriteOpKind.Trim => device.TrimAsync(Offset, Length, Flags, cancellationToken),
        _ => device.WriteZeroesAsync(Offset, Length, Flags, cancellationToken),
    };

    public override string ToString() => $"{Kind} [{Offset}, +{Length})";
}

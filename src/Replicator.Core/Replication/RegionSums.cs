using System.Buffers.Binary;
using Replicator.Core.Hashing;

namespace Replicator.Core.Replication;

/// <summary>
/// What one replica says about a run of regions, for a verify or a resync that compares before it sends:
/// a hash of each region's contents and whether each region's blocks pass their own checksums.
/// </summary>
/// <remarks>
/// A region's hash is XXH3-64 over the <see cref="BlockChecksum"/>s of its 4 KiB blocks (holes count as
/// blocks of zeros), so two replicas' hashes are equal exactly when their contents are, whatever their
/// allocation, and a replica computes it from the checksums it checks anyway. A region's status is the
/// worst of its blocks': <see cref="BlockStatus.Bad"/> over <see cref="BlockStatus.Unverified"/> over
/// <see cref="BlockStatus.Good"/>; the hash of a region that is not good says nothing.
/// <code>
/// wire (a RegionChecksum reply's payload): { u64 hash }×n  { u8 status }×n, little-endian
/// </code>
/// </remarks>
internal sealed record RegionSums(ulong[] Hashes, BlockStatus[] Status)
{
    public int Count => Hashes.Length;

    public byte[] Encode()
    {
        var bytes = new byte[Count * (sizeof(ulong) + 1)];
        for (var i = 0; i < Count; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(i * sizeof(ulong)), Hashes[i]);
            bytes[(Count * sizeof(ulong)) + i] = (byte)Status[i];
        }

        return bytes;
    }

    /// <exception cref="InvalidDataException">The bytes are not <paramref name="expected"/> regions' worth, or name an unknown status.</exception>
    public static RegionSums Decode(ReadOnlySpan<byte> bytes, int expected)
    {
        if (bytes.Length != expected * (sizeof(ulong) + 1))
        {
            throw new InvalidDataException($"{bytes.Length} bytes of region checksums do not describe {expected} regions (9 bytes each)");
        }

        var hashes = new ulong[expected];
        var status = new BlockStatus[expected];
        for (var i = 0; i < expected; i++)
        {
            hashes[i] = BinaryPrimitives.ReadUInt64LittleEndian(bytes[(i * sizeof(ulong))..]);
            status[i] = (BlockStatus)bytes[(expected * sizeof(ulong)) + i];
            if (!Enum.IsDefined(status[i]))
            {
                throw new InvalidDataException($"region {i} has the unknown status {(byte)status[i]}");
            }
        }

        return new RegionSums(hashes, status);
    }

    /// <summary>The number of regions of <paramref name="regionSize"/> bytes in <paramref name="length"/> (the last may be shorter).</summary>
    public static int CountFor(long length, int regionSize) => (int)((length + regionSize - 1) / regionSize);

    /// <summary>The worse of two statuses.</summary>
    public static BlockStatus Worse(BlockStatus a, BlockStatus b) => a == BlockStatus.Bad || b == BlockStatus.Bad
        ? BlockStatus.Bad
        : a == BlockStatus.Unverified || b == BlockStatus.Unverified ? BlockStatus.Unverified : BlockStatus.Good;
}

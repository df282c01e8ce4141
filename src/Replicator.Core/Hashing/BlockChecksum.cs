using System.Buffers.Binary;

namespace Replicator.Core.Hashing;

/// <summary>
/// The checksum of one 4 KiB block of volume data, as the pool stores it beside the data and as the
/// peer link carries it with block-aligned writes and reads. Computed once, on the node where the
/// data entered the pair; checked wherever the block is read or arrives.
/// </summary>
/// <remarks>
/// <para><b>Why 4 KiB.</b> It is the block size of guests and of nearly every file system, so a
/// guest's write covers whole blocks and costs no read-modify-write. 8 bytes per 4 KiB is 0.2% of the
/// data; 512-byte blocks would need 8 times the metadata (and 8 hashes per page), 64 KiB blocks would
/// force a 60 KiB read-modify-write under every 4 KiB write.</para>
/// <para><b>Values.</b> XXH3-64 (<see cref="ContentHash"/>) of the block, except two values the pool
/// reserves: <see cref="Unwritten"/> (0: the block was never written since its extent was allocated,
/// or was zeroed by a punched hole, so it must read as zeros) and <see cref="Unverified"/> (1: after a
/// crash the block failed its checksum where a write may not have been durable, see
/// <c>ThinVolume.RecheckAfterCrash</c>). A hash that happens to be 0 or 1 is stored as 2 or 3; that
/// folds four of 2^64 values into two, which costs nothing measurable in detection.</para>
/// <para>Checksums travel and are stored as little-endian 64-bit words, 8 bytes per block.</para>
/// </remarks>
internal static class BlockChecksum
{
    public const int BlockSize = 4096;
    public const int BlockShift = 12;
    public const int Size = sizeof(ulong);

    /// <summary>Never written since allocated (or zeroed): the block must read as zeros.</summary>
    public const ulong Unwritten = 0;

    /// <summary>Not vouched for: a crash may have torn the block's last write (see the remarks).</summary>
    public const ulong Unverified = 1;

    /// <summary>The checksum of a block of zeros, as a hole reads.</summary>
    public static readonly ulong Zeros = Of(new byte[BlockSize]);

    /// <summary>The checksum of one block (any length, though the pool only hashes whole blocks).</summary>
    public static ulong Of(ReadOnlySpan<byte> block)
    {
        var hash = ContentHash.Of(block);
        return hash <= Unverified ? hash + 2 : hash;
    }

    /// <summary>Whether a range is made of whole blocks.</summary>
    public static bool IsAligned(long offset, long length) => ((offset | length) & (BlockSize - 1)) == 0;

    /// <summary>Bytes of checksums for <paramref name="dataLength"/> bytes of whole blocks.</summary>
    public static int BytesFor(int dataLength) => (dataLength >> BlockShift) * Size;

    /// <summary>Computes one checksum per block of <paramref name="data"/> (whole blocks) into <paramref name="sums"/>.</summary>
    public static void Compute(ReadOnlySpan<byte> data, Span<byte> sums)
    {
        var blocks = data.Length >> BlockShift;
        for (var i = 0; i < blocks; i++)
        {
            Set(sums, i, Of(data.Slice(i << BlockShift, BlockSize)));
        }
    }

    /// <summary>
    /// The first block of <paramref name="data"/> that does not match its checksum in <paramref name="sums"/>, or -1.
    /// Checks data received with checksums (a write from the peer, a block read from it).
    /// </summary>
    public static int FirstMismatch(ReadOnlySpan<byte> data, ReadOnlySpan<byte> sums)
    {
        var blocks = data.Length >> BlockShift;
        if ((data.Length & (BlockSize - 1)) != 0 || sums.Length != blocks * Size)
        {
            return 0;
        }

        for (var i = 0; i < blocks; i++)
        {
            if (Of(data.Slice(i << BlockShift, BlockSize)) != Get(sums, i))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>Checks a block read from the pool against the checksum stored for it.</summary>
    /// <param name="computed">The block's checksum, when the block is intact (for callers that pass it on).</param>
    public static BlockStatus Check(ReadOnlySpan<byte> block, ulong stored, out ulong computed)
    {
        if (stored == Unwritten)
        {
            if (!block.ContainsAnyExcept((byte)0))
            {
                computed = Zeros;
                return BlockStatus.Good;
            }

            computed = Of(block);
            return BlockStatus.Bad;
        }

        computed = Of(block);
        return computed == stored ? BlockStatus.Good : stored == Unverified ? BlockStatus.Unverified : BlockStatus.Bad;
    }

    public static ulong Get(ReadOnlySpan<byte> sums, int index) => BinaryPrimitives.ReadUInt64LittleEndian(sums[(index * Size)..]);

    public static void Set(Span<byte> sums, int index, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(sums[(index * Size)..], value);
}

/// <summary>What a block read from the pool is worth.</summary>
internal enum BlockStatus : byte
{
    /// <summary>It matches its checksum.</summary>
    Good = 0,

    /// <summary>It fails its checksum: the disk returned wrong data (or the checksum itself was damaged).</summary>
    Bad = 1,

    /// <summary>After a crash it could not be vouched for; a verified copy is preferred, else it is accepted as it is.</summary>
    Unverified = 2,
}

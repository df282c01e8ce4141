using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Replicator.Core.Hashing;

/// <summary>
/// XXH64 (xxHash, 64-bit, seeded), as specified by the xxHash project
/// (<c>doc/xxhash_spec.md</c> of Cyan4973/xxHash). It checksums every block payload that
/// crosses the wire between nodes and every region compared by resync and verify.
/// </summary>
/// <remarks>
/// <para>
/// One-shot: <see cref="Hash(ReadOnlySpan{byte}, ulong)"/>. Incremental, for a region hashed
/// in pieces: create with <see cref="XxHash64(ulong)"/>, <see cref="Append"/> each piece, then
/// <see cref="GetCurrentHash"/>; any split of the input gives the one-shot result.
/// </para>
/// <para>
/// The incremental state is a mutable struct so that hashing allocates nothing: keep it in a
/// local or a field and pass it by <see langword="ref"/>; a copy hashes on independently.
/// </para>
/// </remarks>
internal struct XxHash64
{
    private const ulong Prime1 = 0x9E3779B185EBCA87;
    private const ulong Prime2 = 0xC2B2AE3D27D4EB4F;
    private const ulong Prime3 = 0x165667B19E3779F9;
    private const ulong Prime4 = 0x85EBCA77C2B2AE63;
    private const ulong Prime5 = 0x27D4EB2F165667C5;

    /// <summary>The input is consumed in stripes of four 8-byte lanes.</summary>
    private const int StripeLength = 32;

    private readonly ulong _seed;
    private ulong _acc1;
    private ulong _acc2;
    private ulong _acc3;
    private ulong _acc4;
    private ulong _totalLength;
    private int _pendingLength;
    private PendingStripe _pending;

    public XxHash64(ulong seed)
    {
        _seed = seed;
        Reset();
    }

    /// <summary>The hash of <paramref name="data"/> with <paramref name="seed"/>.</summary>
    public static ulong Hash(ReadOnlySpan<byte> data, ulong seed = 0)
    {
        ref var start = ref MemoryMarshal.GetReference(data);
        var length = data.Length;
        ulong hash;
        var offset = 0;
        if (length >= StripeLength)
        {
            var acc1 = seed + Prime1 + Prime2;
            var acc2 = seed + Prime2;
            var acc3 = seed;
            var acc4 = seed - Prime1;
            offset = ConsumeStripes(ref start, length, ref acc1, ref acc2, ref acc3, ref acc4);
            hash = Converge(acc1, acc2, acc3, acc4);
        }
        else
        {
            hash = seed + Prime5;
        }

        hash += (ulong)length;
        return Finish(hash, ref Unsafe.Add(ref start, offset), length - offset);
    }

    /// <summary>Starts over with the seed given at construction.</summary>
    public void Reset()
    {
        _acc1 = _seed + Prime1 + Prime2;
        _acc2 = _seed + Prime2;
        _acc3 = _seed;
        _acc4 = _seed - Prime1;
        _totalLength = 0;
        _pendingLength = 0;
    }

    /// <summary>Adds <paramref name="data"/> to the input hashed so far.</summary>
    public void Append(ReadOnlySpan<byte> data)
    {
        _totalLength += (ulong)data.Length;
        Span<byte> pending = _pending;

        if (_pendingLength > 0)
        {
            var fill = Math.Min(StripeLength - _pendingLength, data.Length);
            data[..fill].CopyTo(pending[_pendingLength..]);
            _pendingLength += fill;
            data = data[fill..];
            if (_pendingLength < StripeLength)
            {
                return;
            }

            ConsumeStripes(ref MemoryMarshal.GetReference(pending), StripeLength, ref _acc1, ref _acc2, ref _acc3, ref _acc4);
            _pendingLength = 0;
        }

        var consumed = ConsumeStripes(ref MemoryMarshal.GetReference(data), data.Length, ref _acc1, ref _acc2, ref _acc3, ref _acc4);
        data[consumed..].CopyTo(pending);
        _pendingLength = data.Length - consumed;
    }

    /// <summary>The hash of everything appended since construction or <see cref="Reset"/>.</summary>
    public readonly ulong GetCurrentHash()
    {
        var hash = _totalLength >= StripeLength
            ? Converge(_acc1, _acc2, _acc3, _acc4)
            : _seed + Prime5;
        hash += _totalLength;

        ReadOnlySpan<byte> pending = _pending;
        return Finish(hash, ref MemoryMarshal.GetReference(pending), _pendingLength);
    }

    /// <summary>Runs every whole stripe of <c>[start, start + length)</c> through the accumulators; returns the bytes consumed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int ConsumeStripes(ref byte start, int length, ref ulong acc1, ref ulong acc2, ref ulong acc3, ref ulong acc4)
    {
        var (a1, a2, a3, a4) = (acc1, acc2, acc3, acc4);
        var offset = 0;
        for (; length - offset >= StripeLength; offset += StripeLength)
        {
            ref var stripe = ref Unsafe.Add(ref start, offset);
            a1 = Round(a1, ReadUInt64(ref stripe, 0));
            a2 = Round(a2, ReadUInt64(ref stripe, 8));
            a3 = Round(a3, ReadUInt64(ref stripe, 16));
            a4 = Round(a4, ReadUInt64(ref stripe, 24));
        }

        (acc1, acc2, acc3, acc4) = (a1, a2, a3, a4);
        return offset;
    }

    private static ulong Converge(ulong acc1, ulong acc2, ulong acc3, ulong acc4)
    {
        var hash = BitOperations.RotateLeft(acc1, 1) + BitOperations.RotateLeft(acc2, 7)
            + BitOperations.RotateLeft(acc3, 12) + BitOperations.RotateLeft(acc4, 18);
        hash = MergeAccumulator(hash, acc1);
        hash = MergeAccumulator(hash, acc2);
        hash = MergeAccumulator(hash, acc3);
        return MergeAccumulator(hash, acc4);
    }

    /// <summary>Mixes in the last <paramref name="remaining"/> (&lt; 32) bytes and avalanches.</summary>
    private static ulong Finish(ulong hash, ref byte tail, int remaining)
    {
        var offset = 0;
        for (; remaining - offset >= 8; offset += 8)
        {
            hash ^= Round(0, ReadUInt64(ref tail, offset));
            hash = (BitOperations.RotateLeft(hash, 27) * Prime1) + Prime4;
        }

        if (remaining - offset >= 4)
        {
            hash ^= ReadUInt32(ref tail, offset) * Prime1;
            hash = (BitOperations.RotateLeft(hash, 23) * Prime2) + Prime3;
            offset += 4;
        }

        for (; offset < remaining; offset++)
        {
            hash ^= Unsafe.Add(ref tail, offset) * Prime5;
            hash = BitOperations.RotateLeft(hash, 11) * Prime1;
        }

        hash ^= hash >> 33;
        hash *= Prime2;
        hash ^= hash >> 29;
        hash *= Prime3;
        hash ^= hash >> 32;
        return hash;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Round(ulong accumulator, ulong lane)
    {
        accumulator += lane * Prime2;
        accumulator = BitOperations.RotateLeft(accumulator, 31);
        return accumulator * Prime1;
    }

    private static ulong MergeAccumulator(ulong hash, ulong accumulator)
    {
        hash ^= Round(0, accumulator);
        return (hash * Prime1) + Prime4;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong ReadUInt64(ref byte source, int offset)
    {
        var value = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref source, offset));
        return BitConverter.IsLittleEndian ? value : BinaryPrimitives.ReverseEndianness(value);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong ReadUInt32(ref byte source, int offset)
    {
        var value = Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref source, offset));
        return BitConverter.IsLittleEndian ? value : BinaryPrimitives.ReverseEndianness(value);
    }

    /// <summary>Input held back until a whole stripe is there.</summary>
    [InlineArray(StripeLength)]
    private struct PendingStripe
    {
        private byte _element;
    }
}

using System.Buffers;
using System.Buffers.Binary;
using System.Numerics;

namespace Replicator.Core.Hashing;

/// <summary>
/// CRC-32C (Castagnoli) over spans and sequences, on top of <see cref="BitOperations.Crc32C(uint, ulong)"/>
/// (SSE4.2 / ARMv8 CRC instructions where present). Guards frame headers against corruption.
/// </summary>
/// <remarks>
/// Incremental use: start from <see cref="InitialState"/>, feed pieces through <see cref="Append"/>,
/// and end with <see cref="Complete"/>. <see cref="Compute(ReadOnlySpan{byte})"/> does all three.
/// </remarks>
internal static class Crc32C
{
    public const uint InitialState = 0xFFFF_FFFF;

    public static uint Compute(ReadOnlySpan<byte> data) => Complete(Append(InitialState, data));

    public static uint Compute(in ReadOnlySequence<byte> data)
    {
        var state = InitialState;
        foreach (var segment in data)
        {
            state = Append(state, segment.Span);
        }

        return Complete(state);
    }

    public static uint Append(uint state, ReadOnlySpan<byte> data)
    {
        while (data.Length >= sizeof(ulong))
        {
            state = BitOperations.Crc32C(state, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[sizeof(ulong)..];
        }

        foreach (var value in data)
        {
            state = BitOperations.Crc32C(state, value);
        }

        return state;
    }

    public static uint Complete(uint state) => ~state;
}

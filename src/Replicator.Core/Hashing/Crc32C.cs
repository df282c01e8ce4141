using System.Buffers.Binary;
using System.Numerics;

namespace Replicator.Core.Hashing;

/// <summary>CRC-32C (Castagnoli) over spans, on the CPU's CRC32 instruction via <see cref="BitOperations"/>.</summary>
public static class Crc32C
{
    /// <summary>The CRC of <paramref name="data"/>; pass a previous result as <paramref name="crc"/> to continue one.</summary>
    public static uint Compute(ReadOnlySpan<byte> data, uint crc = 0)
    {
        var state = ~crc;
        while (data.Length >= sizeof(ulong))
        {
            state = BitOperations.Crc32C(state, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[sizeof(ulong)..];
        }

        foreach (var b in data)
        {
            state = BitOperations.Crc32C(state, b);
        }

        return ~state;
    }
}

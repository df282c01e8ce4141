using Replicator.Core.Devices;
using Replicator.Core.Replication;

namespace Replicator.Core.Tests.Replication.Support;

/// <summary>The changes a client makes, for test cases.</summary>
public enum Change
{
    Write,
    Trim,
    WriteZeroes,
    WriteZeroesNoHole,
}

/// <summary>Data to write, and what the replicas hold afterwards.</summary>
internal static class ReplicaData
{
    public static byte[] Pattern(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    /// <summary>Applies one change of <paramref name="kind"/>; a write writes <paramref name="data"/>, or a pattern when none is given.</summary>
    public static ValueTask ChangeAsync(this IBlockDevice device, Change kind, long offset, int length, byte[]? data = null, CancellationToken cancellationToken = default) => kind switch
    {
        Change.Write => device.WriteAsync(offset, data ?? Pattern(length, seed: (int)offset), IoFlags.None, cancellationToken),
        Change.Trim => device.TrimAsync(offset, length, IoFlags.None, cancellationToken),
        Change.WriteZeroes => device.WriteZeroesAsync(offset, length, IoFlags.None, cancellationToken),
        _ => device.WriteZeroesAsync(offset, length, IoFlags.NoHole, cancellationToken),
    };

    public static async Task<byte[]> ReadAsync(IBlockDevice device, long offset, int length)
    {
        var buffer = new byte[length];
        await device.ReadAsync(offset, buffer);
        return buffer;
    }

    /// <summary>The byte ranges marked out of sync in <paramref name="replica"/>, coalesced.</summary>
    public static List<(long Offset, long Length)> MarkedRanges(ReplicaStore replica, long volumeSize)
    {
        var bitmap = new DirtyBitmap(volumeSize, replica.Granularity);
        foreach (var chunk in replica.EncodeBitmap(4 << 20))
        {
            DirtyBitmapCodec.DecodeInto(chunk, bitmap, null);
        }

        return bitmap.DirtyRuns()
            .Select(run => (run.FirstRegion * bitmap.Granularity, Math.Min(run.Count * bitmap.Granularity, volumeSize - (run.FirstRegion * bitmap.Granularity))))
            .ToList();
    }

    public static List<(long Offset, long Length)> MarkedRanges(ReplicaSide side) => MarkedRanges(side.Replica, side.Thin.Size);

    /// <summary>Asserts both replicas hold the same bytes over the whole volume.</summary>
    public static async Task AssertIdenticalAsync(ReplicaPair pair)
    {
        var size = (int)pair.A.Thin.Size;
        var a = await pair.A.ReadLocalAsync(0, size);
        var b = await pair.B.ReadLocalAsync(0, size);
        var first = a.AsSpan().CommonPrefixLength(b);
        Assert.True(first == size, $"the replicas differ first at byte {first}");
    }
}

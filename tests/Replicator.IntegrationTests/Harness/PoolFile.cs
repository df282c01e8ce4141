using Replicator.Core.Replication;

namespace Replicator.IntegrationTests.Harness;

/// <summary>Damages a stopped node's pool file the way a failing disk would, for verify tests.</summary>
public static class PoolFile
{
    /// <summary>
    /// Finds every aligned run of <paramref name="runLength"/> bytes that all equal <paramref name="fill"/>
    /// and flips one byte in each. Reads only the parts of the sparse file that hold data. Returns the
    /// number of runs changed.
    /// </summary>
    public static int FlipByteInEveryRun(string path, byte fill, int runLength)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite);
        var length = RandomAccess.GetLength(handle);
        var buffer = new byte[runLength];
        var changed = 0;
        for (var data = SparseFileInterop.NextData(handle, 0); data >= 0 && data < length; data = SparseFileInterop.NextData(handle, data))
        {
            var hole = SparseFileInterop.NextHole(handle, data);
            for (var offset = data / runLength * runLength; offset + runLength <= Math.Min(hole, length); offset += runLength)
            {
                RandomAccess.Read(handle, buffer, offset);
                if (buffer[0] == fill && buffer.AsSpan().IndexOfAnyExcept(fill) < 0)
                {
                    RandomAccess.Write(handle, new[] { (byte)~fill }, offset + 100);
                    changed++;
                }
            }

            data = hole;
        }

        RandomAccess.FlushToDisk(handle);
        return changed;
    }
}

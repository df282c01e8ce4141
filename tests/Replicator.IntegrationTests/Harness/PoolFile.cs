namespace Replicator.IntegrationTests.Harness;

/// <summary>Damages a stopped node's pool file the way a failing disk would, for verify tests.</summary>
public static class PoolFile
{
    /// <summary>
    /// Finds every aligned run of <paramref name="runLength"/> bytes that all equal <paramref name="fill"/>
    /// and flips one byte in each. Returns the number of runs changed.
    /// </summary>
    public static int FlipByteInEveryRun(string path, byte fill, int runLength)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        var buffer = new byte[runLength];
        var changed = 0;
        for (long offset = 0; offset + runLength <= file.Length; offset += runLength)
        {
            file.Position = offset;
            file.ReadExactly(buffer);
            if (buffer[0] == fill && buffer.AsSpan().IndexOfAnyExcept(fill) < 0)
            {
                file.Position = offset + 100;
                file.WriteByte((byte)~fill);
                changed++;
            }
        }

        file.Flush(flushToDisk: true);
        return changed;
    }
}

using Replicator.Core.Storage;

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
        using var file = PhysicalFileSystem.Instance.OpenFile(path, FileOpenMode.Open);
        var length = file.Length;
        var buffer = new byte[runLength];
        var changed = 0;
        for (var data = file.NextData(0); data >= 0 && data < length; data = file.NextData(data))
        {
            var hole = file.NextHole(data);
            for (var offset = data / runLength * runLength; offset + runLength <= Math.Min(hole, length); offset += runLength)
            {
                file.Read(offset, buffer);
                if (buffer[0] == fill && buffer.AsSpan().IndexOfAnyExcept(fill) < 0)
                {
                    file.Write(offset + 100, new[] { (byte)~fill });
                    changed++;
                }
            }

            data = hole;
        }

        file.Flush();
        return changed;
    }
}

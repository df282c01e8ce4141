using System.Globalization;
using Replicator.Core.Metadata;
using Replicator.Core.Storage;

namespace Replicator.IntegrationTests.Harness;

/// <summary>Damages a node's pool file the way a failing disk would, for the tests of verify, repair and scrub.</summary>
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

    /// <summary>
    /// Where the byte at <paramref name="offset"/> of <paramref name="volume"/> lives in the pool of the node whose data
    /// directory is <paramref name="nodeDir"/>: the data file and the offset in it. Computed, read-only, from the
    /// pool's own metadata (its snapshot, then its journal), so it works while the node runs.
    /// </summary>
    public static (string File, long Offset) Locate(string nodeDir, string volume, long offset)
    {
        var pool = Path.Combine(nodeDir, "pool");
        var state = PoolSnapshot.Deserialize(ReadShared(Path.Combine(pool, PoolMetadataStore.SnapshotFileName)), out var generation);
        foreach (var journal in Directory.EnumerateFiles(pool, "journal.*")
            .Select(path => (Path: path, Generation: ulong.Parse(Path.GetFileName(path)["journal.".Length..], CultureInfo.InvariantCulture)))
            .Where(j => j.Generation >= generation)
            .OrderBy(j => j.Generation))
        {
            var bytes = ReadShared(journal.Path);
            for (var position = 0; JournalCodec.TryDecode(bytes.AsSpan(position), out var record, out var sequence, out var consumed, out _); position += consumed)
            {
                if (sequence > state.LastSequence)
                {
                    state.Apply(record);
                    state.LastSequence = sequence;
                }
            }
        }

        var found = state.Find(volume) ?? throw new InvalidOperationException($"the pool in {pool} has no volume '{volume}'");
        if (!found.Map.TryGet(offset / state.ExtentSize, out var extent))
        {
            throw new InvalidOperationException($"byte {offset} of volume '{volume}' is not allocated in {pool}");
        }

        var at = (extent * state.ExtentSize) + (offset % state.ExtentSize);
        for (var file = 0; ; file++)
        {
            if (at < state.FileCapacities[file])
            {
                return (Path.Combine(pool, $"data-{file.ToString("D3", CultureInfo.InvariantCulture)}.img"), at);
            }

            at -= state.FileCapacities[file];
        }
    }

    /// <summary>Flips one byte of <paramref name="volume"/> at <paramref name="offset"/> in the node's pool file, as bit rot would; returns the byte it held.</summary>
    public static byte FlipByte(string nodeDir, string volume, long offset)
    {
        var (file, at) = Locate(nodeDir, volume, offset);
        using var handle = File.OpenHandle(file, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        var one = new byte[1];
        RandomAccess.Read(handle, one, at);
        var was = one[0];
        one[0] ^= 0x5a;
        RandomAccess.Write(handle, one, at);
        return was;
    }

    /// <summary>The byte of <paramref name="volume"/> at <paramref name="offset"/> as the node's pool file holds it.</summary>
    public static byte ReadByte(string nodeDir, string volume, long offset)
    {
        var (file, at) = Locate(nodeDir, volume, offset);
        using var handle = File.OpenHandle(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var one = new byte[1];
        RandomAccess.Read(handle, one, at);
        return one[0];
    }

    private static byte[] ReadShared(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}

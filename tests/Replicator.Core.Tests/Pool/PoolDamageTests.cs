using Microsoft.Extensions.Logging.Abstractions;
using Replicator.Core.Devices;
using Replicator.Core.Pool;
using Replicator.Core.Storage;

namespace Replicator.Core.Tests.Pool;

/// <summary>A pool whose journal is damaged in the middle is not opened, and nothing in it is punched on a guess.</summary>
public sealed class PoolDamageTests : IDisposable
{
    private const int Unit = 64 * 1024;
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task A_journal_damaged_in_the_middle_refuses_to_open_and_punches_nothing()
    {
        var live = Path.Combine(_dir.Path, "live");
        var crashed = Path.Combine(_dir.Path, "crashed");
        var data = ThinVolumeTests.Pattern(4 * Unit, seed: 3);
        using (var pool = StoragePool.Create(PhysicalFileSystem.Instance, live, new PoolOptions { FileCapacity = 64L * Unit }, NullLogger.Instance))
        {
            await pool.CreateVolume("v", 16L * Unit).WriteAsync(0, data, IoFlags.Fua);

            // What a kill -9 leaves: the files as they are now, journal records not yet folded into a snapshot.
            Directory.CreateDirectory(crashed);
            foreach (var file in Directory.EnumerateFiles(live).Where(f => !f.EndsWith("pool.lock", StringComparison.Ordinal)))
            {
                File.Copy(file, Path.Combine(crashed, Path.GetFileName(file)));
            }
        }

        var journal = Directory.GetFiles(crashed, "journal.*").Single();
        var bytes = File.ReadAllBytes(journal);
        Assert.True(bytes.Length > 200, "the journal holds the volume and its mappings");
        bytes[12] ^= 0x20;
        File.WriteAllBytes(journal, bytes);
        var dataFile = Path.Combine(crashed, "data-000.img");
        var before = File.ReadAllBytes(dataFile);

        var e = Assert.Throws<StorageDamagedException>(() => StoragePool.Open(PhysicalFileSystem.Instance, crashed, NullLogger.Instance));

        Assert.Contains("not a torn tail", e.Message, StringComparison.Ordinal);
        Assert.Contains("nothing in it was changed", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(dataFile));
        Assert.Equal(bytes, File.ReadAllBytes(journal));
        Assert.True(before.AsSpan().IndexOf(data.AsSpan(0, 4096)) >= 0, "the written data is still in the pool file");
    }
}

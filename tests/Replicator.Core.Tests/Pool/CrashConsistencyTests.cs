using Microsoft.Extensions.Logging.Abstractions;
using Replicator.Core.Devices;
using Replicator.Core.Hashing;
using Replicator.Core.Pool;
using Replicator.Core.Tests.Support.Faults;
using Replicator.Core.Volumes;
using Xunit.Abstractions;

namespace Replicator.Core.Tests.Pool;

/// <summary>
/// Blocks and their checksums across power losses at random points: what was flushed (or written with FUA) reads
/// back exactly and passes its check, with nothing checked at start; what was not may hold any value written to it
/// since the last flush, or, torn, be marked unverified by the check of the activity log's extents at start; never
/// is a block reported damaged. The pool's files are in a <see cref="FaultFileSystem"/> whose power loss tears every
/// page written since its file's last flush (each 512-byte sector old or new).
/// </summary>
public sealed class CrashConsistencyTests(ITestOutputHelper output)
{
    private const int Unit = 64 * 1024;
    private const int Block = BlockChecksum.BlockSize;
    private const int Units = 8;

    [Fact]
    public async Task Flushed_blocks_survive_a_power_loss_with_their_checksums_and_the_rest_are_old_new_or_unverified_never_damaged()
    {
        const int crashes = 60;
        long unverified = 0;
        for (var seed = 0; seed < crashes; seed++)
        {
            unverified += await CrashOnceAsync(new Random(seed), seed);
        }

        output.WriteLine($"{crashes} power losses, {unverified} blocks left unverified by torn or half-made writes");
        Assert.True(unverified > 0, "no power loss tore a write: the test did not exercise the check at start");
    }

    private async Task<long> CrashOnceAsync(Random random, int seed)
    {
        var files = new FaultFileSystem(seed) { Mode = PowerLossMode.TornSectors };
        var pool = StoragePool.Create(files, "/pool", new PoolOptions { FileCapacity = 64L * Unit, ExtentSize = Unit }, NullLogger.Instance);
        var volume = pool.CreateVolume("v", Units * Unit);
        var blocks = Units * Unit / Block;

        // What each block may hold: its value at the last flush, then every value written since.
        var possible = Enumerable.Range(0, blocks).Select(_ => new List<byte[]> { new byte[Block] }).ToArray();
        var touched = new HashSet<int>();
        var steps = random.Next(5, 40);
        for (var step = 0; step < steps; step++)
        {
            var first = random.Next(blocks - 4);
            var count = random.Next(1, 4);
            var fua = random.Next(6) == 0;
            switch (random.Next(6))
            {
                case 0:
                    await volume.TrimAsync((long)first * Block, (long)count * Block, fua ? IoFlags.Fua : IoFlags.None);
                    Written(first, count, new byte[count * Block]);
                    break;
                case 1:
                    // Part of a block: a read-modify-write of the whole block.
                    var at = ((long)first * Block) + (random.Next(8) * 512);
                    var piece = new byte[512];
                    random.NextBytes(piece);
                    var before = new byte[Block];
                    await volume.ReadAsync((long)first * Block, before);
                    piece.CopyTo(before, (int)(at - ((long)first * Block)));
                    await volume.WriteAsync(at, piece, fua ? IoFlags.Fua : IoFlags.None);
                    Written(first, 1, before);
                    break;
                default:
                    var bytes = new byte[count * Block];
                    random.NextBytes(bytes);
                    await volume.WriteAsync((long)first * Block, bytes, fua ? IoFlags.Fua : IoFlags.None);
                    Written(first, count, bytes);
                    break;
            }

            if (fua || random.Next(8) == 0)
            {
                await volume.FlushAsync();
                for (var b = 0; b < blocks; b++)
                {
                    possible[b] = [possible[b][^1]];
                }

                touched.Clear();
            }
        }

        // The node starts again, on what the disk kept; the pool it ran is gone with the process.
        files.PowerLoss();
        using var reopened = StoragePool.Open(files, "/pool", NullLogger.Instance);
        var after = reopened.Find("v")!;

        // Blocks untouched since the last flush pass their checks before anything is checked at start.
        for (var b = 0; b < blocks; b++)
        {
            if (!touched.Contains(b))
            {
                var (status, value) = ReadBlock(after, b);
                Assert.True(status is null, $"seed {seed}: block {b}, flushed, fails its check ({status})");
                Assert.Equal(possible[b][0], value);
            }
        }

        // The activity log names (a superset of) the touched blocks' extents: the check at start marks the torn ones.
        var recheck = after.RecheckAfterCrash(touched.Select(b => ((long)b * Block, (long)Block)).ToList(), settle: false);
        foreach (var b in touched)
        {
            var (status, value) = ReadBlock(after, b);
            Assert.True(status is null or BlockStatus.Unverified, $"seed {seed}: block {b} fails its check after the crash ({status})");
            if (status is null)
            {
                Assert.True(possible[b].Any(v => v.AsSpan().SequenceEqual(value)), $"seed {seed}: block {b} passes its check but holds a value never written to it");
            }
        }

        return recheck.Unverified;

        void Written(int first, int count, byte[] bytes)
        {
            for (var i = 0; i < count; i++)
            {
                possible[first + i].Add(bytes.AsSpan(i * Block, Block).ToArray());
                touched.Add(first + i);
            }
        }
    }

    private static (BlockStatus? Status, byte[] Value) ReadBlock(ThinVolume volume, int block)
    {
        var value = new byte[Block];
        var damaged = new List<DamagedBlock>();
        volume.ReadBlocks((long)block * Block, value, default, damaged);
        return (damaged.Count == 0 ? null : damaged[0].Status, value);
    }
}

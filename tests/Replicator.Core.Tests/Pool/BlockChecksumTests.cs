using Microsoft.Extensions.Logging.Abstractions;
using Replicator.Core.Devices;
using Replicator.Core.Hashing;
using Replicator.Core.Pool;
using Replicator.Core.Storage;
using Replicator.Core.Volumes;

namespace Replicator.Core.Tests.Pool;

/// <summary>Blocks stored with their checksums: what a read finds when the disk returns wrong data, partial blocks, freeing, reopening.</summary>
public sealed class BlockChecksumTests : IDisposable
{
    private const int Unit = 64 * 1024;
    private const int Block = BlockChecksum.BlockSize;
    private readonly TempDirectory _dir = new();
    private readonly List<IStorageFile> _opened = [];

    public void Dispose()
    {
        _opened.ForEach(f => f.Dispose());
        _dir.Dispose();
    }

    [Fact]
    public async Task A_byte_flipped_in_the_pool_file_fails_the_read_of_its_block_only()
    {
        var poolDir = Path.Combine(_dir.Path, "pool");
        using var pool = StoragePool.Create(PhysicalFileSystem.Instance, poolDir, new PoolOptions { FileCapacity = 64L * Unit }, NullLogger.Instance);
        var volume = pool.CreateVolume("v", 16L * Unit);
        var data = ThinVolumeTests.Pattern(4 * Unit, seed: 5);
        await volume.WriteAsync(Unit, data, IoFlags.Fua);

        var fileOffset = FileOffsetOf(pool, volume, Unit + (5 * Block) + 77);
        FlipByte(Path.Combine(poolDir, "data-000.img"), fileOffset);

        var e = await Assert.ThrowsAsync<CorruptBlockException>(async () => await volume.ReadAsync(Unit, new byte[4 * Unit]));
        Assert.Equal(Unit + (5 * Block), e.Offset);
        Assert.Equal(BlockStatus.Bad, e.Status);

        var back = new byte[4 * Unit];
        var damaged = new List<DamagedBlock>();
        volume.ReadBlocks(Unit, back, default, damaged);
        Assert.Equal([new DamagedBlock(Unit + (5 * Block), BlockStatus.Bad)], damaged);
        Assert.Equal(data.AsSpan(0, 5 * Block).ToArray(), back.AsSpan(0, 5 * Block).ToArray());
        Assert.Equal(data.AsSpan(6 * Block).ToArray(), back.AsSpan(6 * Block).ToArray());

        // A read that does not touch the block is not disturbed, even one ending just before it.
        await volume.ReadAsync(Unit + (5 * Block) - 100, new byte[100]);
        await volume.ReadAsync(Unit + (6 * Block), new byte[3 * Unit]);
        await Assert.ThrowsAsync<CorruptBlockException>(async () => await volume.ReadAsync(Unit + (5 * Block) + 4000, new byte[10]));
    }

    [Fact]
    public async Task An_unwritten_block_must_read_as_zeros_and_a_stray_write_into_it_is_caught()
    {
        var poolDir = Path.Combine(_dir.Path, "pool");
        using var pool = StoragePool.Create(PhysicalFileSystem.Instance, poolDir, new PoolOptions { FileCapacity = 64L * Unit }, NullLogger.Instance);
        var volume = pool.CreateVolume("v", 16L * Unit);
        await volume.WriteAsync(0, ThinVolumeTests.Pattern(Block, 1), IoFlags.Fua);

        var rest = new byte[Unit - Block];
        await volume.ReadAsync(Block, rest);
        Assert.True(rest.AsSpan().IndexOfAnyExcept((byte)0) < 0);

        // A misdirected write lands in a block of the unit that was never written.
        FlipByte(Path.Combine(poolDir, "data-000.img"), FileOffsetOf(pool, volume, (3 * Block) + 1));
        var e = await Assert.ThrowsAsync<CorruptBlockException>(async () => await volume.ReadAsync(0, new byte[Unit]));
        Assert.Equal(3 * Block, e.Offset);
    }

    [Theory]
    [InlineData(0, 512)]
    [InlineData(512, 512)]
    [InlineData(4000, 200)]
    [InlineData(Block - 1, 2)]
    [InlineData(100, (3 * Block) + 50)]
    [InlineData(Unit - 300, 600)]
    public async Task Writes_of_part_of_a_block_merge_into_it_and_keep_its_checksum(long offset, int length)
    {
        using var pool = NewMemoryPool(out _, out var sums);
        var volume = pool.CreateVolume("v", 8L * Unit);
        var model = ThinVolumeTests.Pattern(4 * Unit, seed: 9);
        await volume.WriteAsync(0, model, IoFlags.None);
        var piece = ThinVolumeTests.Pattern(length, seed: 10);
        await volume.WriteAsync(offset, piece, IoFlags.None);
        piece.CopyTo(model.AsSpan((int)offset));

        var back = new byte[4 * Unit];
        var damaged = new List<DamagedBlock>();
        volume.ReadBlocks(0, back, default, damaged);
        Assert.Empty(damaged);
        Assert.Equal(model, back);
        for (var b = 0; b < 4 * Unit / Block; b++)
        {
            Assert.Equal(BlockChecksum.Of(model.AsSpan(b * Block, Block)), StoredChecksum(sums, pool, volume, (long)b * Block));
        }
    }

    [Fact]
    public async Task A_write_of_part_of_a_damaged_block_is_refused_and_changes_nothing()
    {
        using var pool = NewMemoryPool(out var data, out _);
        var volume = pool.CreateVolume("v", 8L * Unit);
        await volume.WriteAsync(0, ThinVolumeTests.Pattern(Unit, 2), IoFlags.None);
        var offset = FileOffsetOf(pool, volume, (2 * Block) + 10);
        var one = new byte[1];
        data.Read(offset, one);
        data.Write(offset, [(byte)~one[0]]);

        var e = await Assert.ThrowsAsync<CorruptBlockException>(async () => await volume.WriteAsync((2 * Block) + 100, new byte[] { 1, 2, 3 }, IoFlags.None));
        Assert.Equal(2 * Block, e.Offset);
        var after = new byte[1];
        data.Read(offset, after);
        Assert.Equal((byte)~one[0], after[0]);
        var block = new byte[Block];
        data.Read(FileOffsetOf(pool, volume, 2 * Block), block);
        Assert.Equal(ThinVolumeTests.Pattern(Unit, 2).AsSpan((2 * Block) + 100, 3).ToArray(), block.AsSpan(100, 3).ToArray());

        // A whole-block write replaces it, with a checksum that matches again.
        await volume.WriteAsync(2 * Block, new byte[Block].Select(_ => (byte)7).ToArray(), IoFlags.None);
        await volume.ReadAsync(0, new byte[Unit]);
    }

    [Fact]
    public async Task Trimmed_and_zeroed_blocks_read_as_zeros_with_their_checksums_cleared_and_freed_extents_come_back_clean()
    {
        using var pool = NewMemoryPool(out _, out var sums);
        var volume = pool.CreateVolume("v", 8L * Unit);
        var model = ThinVolumeTests.Pattern(3 * Unit, 4);
        await volume.WriteAsync(0, model, IoFlags.None);

        // Part of unit 0 (ragged at both ends), the whole of unit 1, a ragged piece of unit 2.
        await volume.TrimAsync(1000, Unit + Unit - 1000 + 5000, IoFlags.None);
        model.AsSpan(1000, Unit + Unit - 1000 + 5000).Clear();
        await volume.WriteZeroesAsync((2 * Unit) + 8192, 3 * Block, IoFlags.NoHole);
        model.AsSpan((2 * Unit) + 8192, 3 * Block).Clear();

        var back = new byte[3 * Unit];
        var damaged = new List<DamagedBlock>();
        volume.ReadBlocks(0, back, default, damaged);
        Assert.Empty(damaged);
        Assert.Equal(model, back);
        Assert.Equal(BlockChecksum.Unwritten, StoredChecksum(sums, pool, volume, 2 * Block));
        Assert.Equal(BlockChecksum.Of(model.AsSpan(0, Block)), StoredChecksum(sums, pool, volume, 0));

        // Unit 1's extent was freed: whatever gets it next reads zeros that pass their checks.
        pool.Flush();
        var other = pool.CreateVolume("w", 8L * Unit);
        await other.WriteAsync(0, new byte[] { 1 }, IoFlags.None);
        for (var u = 0; u < 8; u++)
        {
            await other.WriteAsync((long)u * Unit, new byte[] { 9 }, IoFlags.None);
        }

        var all = new byte[8 * Unit];
        damaged.Clear();
        other.ReadBlocks(0, all, default, damaged);
        Assert.Empty(damaged);
    }

    [Fact]
    public async Task Block_aligned_reads_hand_out_the_checksum_of_every_block_holes_included()
    {
        using var pool = NewMemoryPool(out _, out _);
        var volume = pool.CreateVolume("v", 8L * Unit);
        var data = ThinVolumeTests.Pattern(2 * Block, 6);
        await volume.WriteAsync(Unit - Block, data, IoFlags.None);

        var back = new byte[4 * Block];
        var sums = new byte[4 * BlockChecksum.Size];
        volume.ReadBlocks(Unit - (2 * Block), back, sums, null);
        Assert.Equal(BlockChecksum.Zeros, BlockChecksum.Get(sums, 0));
        Assert.Equal(BlockChecksum.Of(data.AsSpan(0, Block)), BlockChecksum.Get(sums, 1));
        Assert.Equal(BlockChecksum.Of(data.AsSpan(Block)), BlockChecksum.Get(sums, 2));
        Assert.Equal(BlockChecksum.Zeros, BlockChecksum.Get(sums, 3));
    }

    [Fact]
    public async Task Checksums_given_with_a_write_are_stored_as_they_are()
    {
        using var pool = NewMemoryPool(out _, out var store);
        var volume = pool.CreateVolume("v", 8L * Unit);
        var data = ThinVolumeTests.Pattern(2 * Block, 8);
        var sums = new byte[2 * BlockChecksum.Size];
        BlockChecksum.Compute(data, sums);
        await volume.WriteAsync(Block, data, sums, IoFlags.None);
        Assert.Equal(BlockChecksum.Get(sums, 1), StoredChecksum(store, pool, volume, 2 * Block));
        await Assert.ThrowsAsync<ArgumentException>(async () => await volume.WriteAsync(100, data, sums, IoFlags.None));
    }

    [Fact]
    public async Task A_damaged_block_is_repaired_from_a_verified_copy_only_while_it_is_still_damaged()
    {
        using var pool = NewMemoryPool(out var data, out _);
        var volume = pool.CreateVolume("v", 8L * Unit);
        var good = ThinVolumeTests.Pattern(Block, 3);
        await volume.WriteAsync(Block, good, IoFlags.None);
        var offset = FileOffsetOf(pool, volume, Block + 5);
        data.Write(offset, [0xEE]);
        await Assert.ThrowsAsync<CorruptBlockException>(async () => await volume.ReadAsync(Block, new byte[Block]));

        Assert.Throws<ArgumentException>(() => volume.RepairBlock(Block, good, BlockChecksum.Of(good) ^ 1));
        Assert.True(volume.RepairBlock(Block, good, BlockChecksum.Of(good)));
        var back = new byte[Block];
        await volume.ReadAsync(Block, back);
        Assert.Equal(good, back);

        // Intact now (or rewritten by a newer write): an older copy must not go over it.
        var older = ThinVolumeTests.Pattern(Block, 4);
        Assert.False(volume.RepairBlock(Block, older, BlockChecksum.Of(older)));
        await volume.ReadAsync(Block, back);
        Assert.Equal(good, back);

        // A block that is not mapped (trimmed since) stays a hole.
        Assert.False(volume.RepairBlock(5L * Unit, older, BlockChecksum.Of(older)));
        Assert.Equal(0, (await volume.GetAllocationAsync(5L * Unit, Unit)).Count(a => a.State == AllocationState.Data));
    }

    [Fact]
    public async Task Reads_racing_writes_of_the_same_blocks_never_report_damage_and_partial_writes_lose_no_bytes()
    {
        using var pool = NewMemoryPool(out _, out _);
        var volume = pool.CreateVolume("v", 8L * Unit);
        await volume.WriteAsync(0, new byte[Unit], IoFlags.None);
        const int rounds = 400;
        var writing = 5;
        var falseAlarms = 0;
        var reads = 0;

        // One writer per 512-byte slice of block 0 (disjoint bytes of one block: each is a read-modify-write),
        // one writer of whole blocks 1..3 in turn, and readers of the whole unit until the writers are done.
        var writers = Enumerable.Range(0, 4).Select(slice => Task.Run(async () =>
        {
            for (var round = 0; round < rounds; round++)
            {
                await volume.WriteAsync(slice * 512, Enumerable.Repeat((byte)((round % 255) + 1), 512).ToArray(), IoFlags.None);
            }

            Interlocked.Decrement(ref writing);
        })).Append(Task.Run(async () =>
        {
            var blocks = Enumerable.Range(0, 16).Select(seed => ThinVolumeTests.Pattern(Block, seed)).ToArray();
            for (var round = 1; round <= 10 * rounds; round++)
            {
                await volume.WriteAsync((1 + (round % 3)) * Block, blocks[round % blocks.Length], IoFlags.None);
            }

            Interlocked.Decrement(ref writing);
        })).ToArray();
        var readers = Enumerable.Range(0, 3).Select(_ => Task.Run(() =>
        {
            var buffer = new byte[Unit];
            var damaged = new List<DamagedBlock>();
            while (Volatile.Read(ref writing) > 0)
            {
                damaged.Clear();
                volume.ReadBlocks(0, buffer, default, damaged);
                Interlocked.Add(ref falseAlarms, damaged.Count);
                Interlocked.Increment(ref reads);
            }
        })).ToArray();
        await Task.WhenAll(writers.Concat(readers));

        Assert.Equal(0, falseAlarms);
        Assert.True(reads > 0);
        var block = new byte[Block];
        await volume.ReadAsync(0, block);
        var last = (byte)(((rounds - 1) % 255) + 1);
        for (var slice = 0; slice < 4; slice++)
        {
            Assert.True(block.AsSpan(slice * 512, 512).IndexOfAnyExcept(last) < 0, $"slice {slice} of block 0 lost bytes to another slice's write");
        }
    }

    [Fact]
    public async Task A_read_that_sees_a_block_between_its_new_data_and_its_new_checksum_is_no_alarm()
    {
        var files = new HookedFileSystem();
        using var pool = StoragePool.Create(files, "/pool", new PoolOptions { FileCapacity = 64L * Unit, ExtentSize = Unit }, NullLogger.Instance);
        var data = files.DataFile!;
        var volume = pool.CreateVolume("v", 8L * Unit);
        await volume.WriteAsync(0, ThinVolumeTests.Pattern(Block, 1), IoFlags.None);
        var fresh = ThinVolumeTests.Pattern(Block, 2);

        // The write's data is in place, its checksum not yet: a read runs exactly then, on another thread.
        Task<(List<DamagedBlock> Damaged, byte[] Data)>? reader = null;
        var readerSawData = new TaskCompletionSource();
        data.AfterWrite = () =>
        {
            data.AfterWrite = null;
            data.OnRead = () => readerSawData.TrySetResult();
            reader = Task.Run(() =>
            {
                var buffer = new byte[Block];
                var damaged = new List<DamagedBlock>();
                volume.ReadBlocks(0, buffer, default, damaged);
                return (damaged, buffer);
            });
            readerSawData.Task.Wait(TimeSpan.FromSeconds(10));
            data.OnRead = null;
        };
        await volume.WriteAsync(0, fresh, IoFlags.None);

        var (damagedSeen, read) = await reader!.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Empty(damagedSeen);
        Assert.Equal(fresh, read);
    }

    [Fact]
    public async Task Two_writes_of_different_parts_of_one_block_never_lose_each_others_bytes()
    {
        var files = new HookedFileSystem();
        using var pool = StoragePool.Create(files, "/pool", new PoolOptions { FileCapacity = 64L * Unit, ExtentSize = Unit }, NullLogger.Instance);
        var data = files.DataFile!;
        var volume = pool.CreateVolume("v", 8L * Unit);
        await volume.WriteAsync(0, new byte[Block], IoFlags.None);

        // The first write has read the block it merges into; the second write of the same block runs then, and may
        // finish (it must not, before the first has written) within the 200 ms the first waits for it.
        Task? second = null;
        data.OnRead = () =>
        {
            data.OnRead = null;
            second = Task.Run(() => volume.WriteAsync(2048, Enumerable.Repeat((byte)2, 512).ToArray(), IoFlags.None).AsTask());
            second.Wait(TimeSpan.FromMilliseconds(200));
        };
        await volume.WriteAsync(0, Enumerable.Repeat((byte)1, 512).ToArray(), IoFlags.None);
        await second!.WaitAsync(TimeSpan.FromSeconds(10));

        var block = new byte[Block];
        await volume.ReadAsync(0, block);
        Assert.True(block.AsSpan(0, 512).IndexOfAnyExcept((byte)1) < 0, "the first write's bytes were lost");
        Assert.True(block.AsSpan(2048, 512).IndexOfAnyExcept((byte)2) < 0, "the second write's bytes were lost");
    }

    [Fact]
    public async Task The_checksums_persist_and_a_pool_opened_without_them_or_from_before_them_computes_them_from_its_data()
    {
        var poolDir = Path.Combine(_dir.Path, "pool");
        var data = ThinVolumeTests.Pattern(2 * Unit, 12);
        using (var pool = StoragePool.Create(PhysicalFileSystem.Instance, poolDir, new PoolOptions { FileCapacity = 64L * Unit }, NullLogger.Instance))
        {
            await pool.CreateVolume("v", 8L * Unit).WriteAsync(Block, data, IoFlags.None);
        }

        using (var pool = StoragePool.Open(PhysicalFileSystem.Instance, poolDir, NullLogger.Instance, blockChecksums: false))
        {
            Assert.False(pool.BlockChecksums);
            Assert.False(File.Exists(Path.Combine(poolDir, "data-000.sums")));
            Assert.True(File.Exists(Path.Combine(poolDir, "NO-BLOCK-CHECKSUMS")));

            // Written without checksums: only a recomputation can vouch for these afterwards.
            await pool.Find("v")!.WriteAsync(Unit * 4, data, IoFlags.None);
        }

        using (var pool = StoragePool.Open(PhysicalFileSystem.Instance, poolDir, NullLogger.Instance))
        {
            Assert.True(pool.BlockChecksums);
            Assert.False(File.Exists(Path.Combine(poolDir, "NO-BLOCK-CHECKSUMS")));
            var volume = pool.Find("v")!;
            var back = new byte[8 * Unit];
            var damaged = new List<DamagedBlock>();
            volume.ReadBlocks(0, back, default, damaged);
            Assert.Empty(damaged);
            Assert.Equal(data, back.AsSpan(Block, 2 * Unit).ToArray());
            Assert.Equal(data, back.AsSpan(4 * Unit, 2 * Unit).ToArray());

            FlipByte(Path.Combine(poolDir, "data-000.img"), FileOffsetOf(pool, volume, 4 * Unit));
            Assert.Throws<CorruptBlockException>(() => volume.ReadAsync(4 * Unit, new byte[Block]).GetAwaiter().GetResult());
        }

        File.WriteAllBytes(Path.Combine(poolDir, "data-000.sums"), new byte[BlockChecksumStore.FileLength(64L * Unit)]);
        var e = Assert.Throws<InvalidDataException>(() => StoragePool.Open(PhysicalFileSystem.Instance, poolDir, NullLogger.Instance));
        Assert.Contains("header is damaged", e.Message);
    }

    [Fact]
    public async Task After_a_crash_blocks_whose_write_may_not_have_been_durable_are_marked_unverified_or_settled_never_reported()
    {
        using var pool = NewMemoryPool(out var data, out var sums);
        var volume = pool.CreateVolume("v", 8L * Unit);
        await volume.WriteAsync(0, ThinVolumeTests.Pattern(2 * Unit, 1), IoFlags.None);

        // As a power loss leaves them: block 1's new data reached the disk without its checksum, block 17's checksum without its data.
        pool.Flush();
        data.Write(FileOffsetOf(pool, volume, Block), ThinVolumeTests.Pattern(Block, 2));
        var slot = new byte[BlockChecksum.Size];
        BlockChecksum.Set(slot, 0, BlockChecksum.Of(ThinVolumeTests.Pattern(Block, 3)));
        sums.Write(BlockChecksumStore.HeaderBytes + ((FileOffsetOf(pool, volume, 17 * Block) / Block) * BlockChecksum.Size), slot);

        var recheck = volume.RecheckAfterCrash([(0, Unit)], settle: false);
        Assert.Equal(Unit / Block, recheck.CheckedBlocks);
        Assert.Equal(1, recheck.Unverified);
        var damaged = new List<DamagedBlock>();
        volume.ReadBlocks(0, new byte[2 * Unit], default, damaged);
        Assert.Equal([new DamagedBlock(Block, BlockStatus.Unverified), new DamagedBlock(17 * Block, BlockStatus.Bad)], damaged);

        Assert.True(volume.SettleBlock(Block));
        Assert.Equal(1, volume.RecheckAfterCrash([(Unit, Unit)], settle: true).Settled);
        damaged.Clear();
        volume.ReadBlocks(0, new byte[2 * Unit], default, damaged);
        Assert.Empty(damaged);
    }

    [Fact]
    public async Task A_data_file_of_less_than_a_page_of_slots_keeps_its_checksum_file_whole_and_opens_again()
    {
        // 8 extents of 64 KiB: 128 slots, a quarter of the 4 KiB page the slots are written back in.
        var files = new MemoryFileSystem();
        var data = ThinVolumeTests.Pattern(2 * Unit, 6);
        using (var pool = StoragePool.Create(files, "/small", new PoolOptions { FileCapacity = 8L * Unit, ExtentSize = Unit }, NullLogger.Instance))
        {
            await pool.CreateVolume("v", 8L * Unit).WriteAsync(Unit, data, IoFlags.Fua);
        }

        using (var sums = files.OpenFile("/small/data-000.sums", FileOpenMode.Open))
        {
            Assert.Equal(BlockChecksumStore.FileLength(8L * Unit), sums.Length);
        }

        using var reopened = StoragePool.Open(files, "/small", NullLogger.Instance);
        var back = new byte[2 * Unit];
        await reopened.Find("v")!.ReadAsync(Unit, back);
        Assert.Equal(data, back);
    }

    [Fact]
    public async Task A_pool_without_checksums_reads_what_it_holds()
    {
        var poolDir = Path.Combine(_dir.Path, "off");
        using var pool = StoragePool.Create(PhysicalFileSystem.Instance, poolDir, new PoolOptions { FileCapacity = 64L * Unit, BlockChecksums = false }, NullLogger.Instance);
        Assert.False(pool.BlockChecksums);
        var volume = pool.CreateVolume("v", 8L * Unit);
        await volume.WriteAsync(100, ThinVolumeTests.Pattern(Block, 1), IoFlags.Fua);
        FlipByte(Path.Combine(poolDir, "data-000.img"), FileOffsetOf(pool, volume, 200));
        await volume.ReadAsync(0, new byte[Unit]);
        Assert.False(File.Exists(Path.Combine(poolDir, "data-000.sums")));
    }

    /// <summary>
    /// A file system in memory whose pool data file runs a test's code right after a write, or a read, reaches it
    /// (set anew for each, cleared by the test).
    /// </summary>
    private sealed class HookedFileSystem : IFileSystem
    {
        private readonly MemoryFileSystem _inner = new();

        /// <summary>The pool's data file as the pool opened it, once it did.</summary>
        public HookedFile? DataFile { get; private set; }

        public bool FileExists(string path) => _inner.FileExists(path);

        public IStorageFile OpenFile(string path, FileOpenMode mode)
        {
            var file = _inner.OpenFile(path, mode);
            return path.EndsWith(".img", StringComparison.Ordinal) ? DataFile = new HookedFile(file) : file;
        }

        public void DeleteFile(string path) => _inner.DeleteFile(path);

        public void RenameFile(string source, string destination) => _inner.RenameFile(source, destination);

        public IReadOnlyList<string> ListFiles(string directory, string prefix) => _inner.ListFiles(directory, prefix);

        public void CreateDirectory(string path) => _inner.CreateDirectory(path);

        public void SyncDirectory(string path) => _inner.SyncDirectory(path);

        public IDisposable LockFile(string path) => _inner.LockFile(path);
    }

    private sealed class HookedFile(IStorageFile inner) : IStorageFile
    {
        public Action? AfterWrite { get; set; }

        public Action? OnRead { get; set; }

        public string Path => inner.Path;

        public long Length => inner.Length;

        public int Read(long offset, Span<byte> destination)
        {
            var read = inner.Read(offset, destination);
            OnRead?.Invoke();
            return read;
        }

        public void Write(long offset, ReadOnlySpan<byte> source)
        {
            inner.Write(offset, source);
            AfterWrite?.Invoke();
        }

        public void SetLength(long length) => inner.SetLength(length);

        public void Flush() => inner.Flush();

        public void Discard(long offset, long length) => inner.Discard(offset, length);

        public long NextData(long offset) => inner.NextData(offset);

        public long NextHole(long offset) => inner.NextHole(offset);

        public void Dispose() => inner.Dispose();
    }

    internal static long FileOffsetOf(StoragePool pool, ThinVolume volume, long volumeOffset)
    {
        Assert.True(volume.State.Map.TryGet(volumeOffset / pool.ExtentSize, out var extent));
        return pool.Locate(extent).Offset + (volumeOffset % pool.ExtentSize);
    }

    internal static void FlipByte(string path, long offset)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite);
        var one = new byte[1];
        RandomAccess.Read(handle, one, offset);
        one[0] ^= 0x40;
        RandomAccess.Write(handle, one, offset);
    }

    private static ulong StoredChecksum(IStorageFile sums, StoragePool pool, ThinVolume volume, long volumeOffset)
    {
        pool.Flush();
        var slot = new byte[BlockChecksum.Size];
        sums.Read(BlockChecksumStore.HeaderBytes + ((FileOffsetOf(pool, volume, volumeOffset) / Block) * BlockChecksum.Size), slot);
        return BlockChecksum.Get(slot, 0);
    }

    /// <summary>A pool in memory, with its data file and its checksum file opened beside it (to corrupt them, or look into them).</summary>
    private StoragePool NewMemoryPool(out IStorageFile data, out IStorageFile sums)
    {
        var files = new MemoryFileSystem();
        var pool = StoragePool.Create(files, "/pool", new PoolOptions { FileCapacity = 64L * Unit, ExtentSize = Unit }, NullLogger.Instance);
        data = files.OpenFile("/pool/data-000.img", FileOpenMode.Open);
        sums = files.OpenFile("/pool/data-000.sums", FileOpenMode.Open);
        _opened.Add(data);
        _opened.Add(sums);
        return pool;
    }
}

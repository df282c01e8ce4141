using Replicator.Core.Storage;
using static Replicator.Core.Tests.Pool.ThinVolumeTests;

namespace Replicator.Core.Tests.Support.Faults;

/// <summary>The fault-injecting file system keeps Linux's durability rules, so the crash tests built on it mean something.</summary>
public sealed class FaultFileSystemTests
{
    private const string Dir = "/d";

    [Fact]
    public void A_power_loss_keeps_what_was_flushed_and_drops_what_was_not()
    {
        var fs = NewFileSystem();
        using (var file = Create(fs, "f"))
        {
            fs.SyncDirectory(Dir);
            file.Write(0, Pattern(8192, 1));
            file.Flush();
            file.Write(4096, Pattern(4096, 2));
            file.Write(8192, Pattern(100, 3));
        }

        fs.PowerLoss();

        using var reopened = fs.OpenFile(Path.Combine(Dir, "f"), FileOpenMode.Open);
        Assert.Equal(8192, reopened.Length);
        Assert.Equal(Pattern(8192, 1), ReadAll(reopened));
    }

    [Fact]
    public void Creates_renames_and_deletes_survive_only_once_their_directory_is_synced()
    {
        var fs = NewFileSystem();
        Create(fs, "kept").Dispose();
        Create(fs, "deleted").Dispose();
        Create(fs, "renamed").Dispose();
        fs.SyncDirectory(Dir);
        Create(fs, "new").Dispose();
        fs.DeleteFile(Path.Combine(Dir, "deleted"));
        fs.RenameFile(Path.Combine(Dir, "renamed"), Path.Combine(Dir, "moved"));
        Assert.Equal(["kept", "moved", "new"], Names(fs));

        fs.PowerLoss();

        Assert.Equal(["deleted", "kept", "renamed"], Names(fs));
    }

    [Fact]
    public void After_a_failed_flush_a_later_flush_succeeds_but_the_data_it_dropped_never_becomes_durable()
    {
        var fs = NewFileSystem();
        using var file = Create(fs, "f");
        fs.SyncDirectory(Dir);
        file.Write(0, Pattern(4096, 1));
        fs.FailNext(IoOperation.Flush);

        var error = Assert.Throws<IOException>(file.Flush);
        Assert.Equal(Errno.EIO, error.HResult);
        file.Flush();
        Assert.Equal(Pattern(4096, 1), ReadAll(file));
        fs.PowerLoss();

        // The size reached the disk with the second flush; the bytes never did.
        using var reopened = fs.OpenFile(Path.Combine(Dir, "f"), FileOpenMode.Open);
        Assert.Equal(new byte[4096], ReadAll(reopened));
    }

    [Fact]
    public void A_page_written_again_after_a_failed_flush_is_flushed_by_the_next_one()
    {
        var fs = NewFileSystem();
        using var file = Create(fs, "f");
        fs.SyncDirectory(Dir);
        file.Write(0, Pattern(4096, 1));
        fs.FailNext(IoOperation.Flush);
        Assert.Throws<IOException>(file.Flush);

        file.Write(0, Pattern(4096, 2));
        file.Flush();
        fs.PowerLoss();

        using var reopened = fs.OpenFile(Path.Combine(Dir, "f"), FileOpenMode.Open);
        Assert.Equal(Pattern(4096, 2), ReadAll(reopened));
    }

    [Fact]
    public void A_write_that_needs_more_space_than_is_left_writes_what_fits_and_fails_with_ENOSPC()
    {
        var fs = NewFileSystem();
        using var file = Create(fs, "f");
        file.Write(0, Pattern(4096, 1));
        fs.SpaceLeft = 8192;

        var error = Assert.Throws<IOException>(() => file.Write(0, Pattern(4 * 4096, 2)));

        Assert.Equal(Errno.ENOSPC, error.HResult);
        Assert.Equal(3 * 4096, file.Length);
        Assert.Equal(Pattern(4 * 4096, 2)[..(3 * 4096)], ReadAll(file));
        Assert.Equal(0, fs.SpaceLeft);
        file.Write(4096, Pattern(4096, 3));
        file.Discard(0, 8192);
        Assert.Equal(8192, fs.SpaceLeft);
    }

    [Fact]
    public void An_injected_error_hits_only_the_calls_it_names_and_only_as_often_as_asked()
    {
        var fs = NewFileSystem();
        using var a = Create(fs, "a");
        using var b = Create(fs, "b");
        fs.FailNext(IoOperation.Write | IoOperation.Read, where: p => p.EndsWith("/b", StringComparison.Ordinal), times: 2);

        a.Write(0, Pattern(10, 1));
        Assert.Equal(Errno.EIO, Assert.Throws<IOException>(() => b.Write(0, Pattern(10, 1))).HResult);
        Assert.Equal(Errno.EIO, Assert.Throws<IOException>(() => b.Read(0, new byte[10])).HResult);
        b.Write(0, Pattern(10, 1));
        Assert.Equal(10, b.Read(0, new byte[10]));
    }

    [Fact]
    public void Cutting_the_power_at_a_change_stops_it_and_everything_after_until_the_power_is_back()
    {
        var fs = NewFileSystem();
        var file = Create(fs, "f");
        fs.SyncDirectory(Dir);
        file.Write(0, Pattern(10, 1));
        file.Flush();
        fs.CutPowerAt(2);

        file.Write(0, Pattern(10, 2));
        Assert.Throws<PowerCutException>(file.Flush);
        Assert.Throws<PowerCutException>(() => file.Read(0, new byte[10]));
        Assert.Throws<PowerCutException>(() => fs.FileExists(file.Path));
        fs.PowerLoss();

        Assert.Throws<PowerCutException>(() => file.Read(0, new byte[10]));
        using var reopened = fs.OpenFile(file.Path, FileOpenMode.Open);
        Assert.Equal(Pattern(10, 1), ReadAll(reopened));
    }

    [Fact]
    public void Locks_die_with_the_power()
    {
        var fs = NewFileSystem();
        fs.LockFile(Path.Combine(Dir, "lock"));
        Assert.Throws<IOException>(() => fs.LockFile(Path.Combine(Dir, "lock")));

        fs.PowerLoss();

        fs.LockFile(Path.Combine(Dir, "lock")).Dispose();
    }

    [Fact]
    public void Unsynced_pages_survive_or_not_independently_and_torn_sectors_mix_old_and_new()
    {
        var outcomes = new HashSet<string>();
        var sectors = new HashSet<string>();
        for (var seed = 0; seed < 40; seed++)
        {
            var (pages, torn) = LoseTwoPages(seed, PowerLossMode.RandomPages);
            outcomes.Add(pages);
            Assert.DoesNotContain('m', torn);
            (_, torn) = LoseTwoPages(seed, PowerLossMode.TornSectors);
            sectors.Add(torn);
        }

        Assert.Equal(["oo", "on", "no", "nn"], outcomes.Order().Reverse());
        Assert.Contains(sectors, s => s.Contains('m', StringComparison.Ordinal));
    }

    [Fact]
    public void With_writeback_an_intermediate_state_of_a_page_can_survive()
    {
        var fs = NewFileSystem();
        fs.WritebackChance = 1;
        using var file = Create(fs, "f");
        fs.SyncDirectory(Dir);
        file.Write(0, Pattern(4096, 1));
        file.Write(0, Pattern(4096, 2));
        file.Write(0, Pattern(4096, 3));

        fs.PowerLoss();

        using var reopened = fs.OpenFile(file.Path, FileOpenMode.Open);
        Assert.Equal(Pattern(4096, 2), ReadAll(reopened));
    }

    [Theory]
    [InlineData(PowerLossMode.DropUnsynced)]
    [InlineData(PowerLossMode.RandomPages)]
    [InlineData(PowerLossMode.TornSectors)]
    public void An_atomic_write_cut_at_any_change_leaves_the_old_file_or_the_new_one_whole(PowerLossMode mode)
    {
        var old = Pattern(6000, 1);
        var replacement = Pattern(9000, 2);
        for (var cut = 1; ; cut++)
        {
            var fs = NewFileSystem(seed: cut);
            fs.Mode = mode;
            var path = Path.Combine(Dir, "state");
            fs.WriteAtomically(path, old);
            fs.CutPowerAt(cut);
            var completed = false;
            try
            {
                fs.WriteAtomically(path, replacement);
                completed = true;
            }
            catch (PowerCutException)
            {
            }

            fs.PowerLoss();
            var survived = fs.ReadAllBytes(path);
            Assert.True(survived.SequenceEqual(old) || survived.SequenceEqual(replacement), $"cut at change {cut}: {survived.Length} bytes that are neither file");
            if (completed)
            {
                Assert.Equal(replacement, survived);
                Assert.True(cut > 4, "an atomic write is at least four changes: create, write, flush, rename");
                return;
            }
        }
    }

    private static (string Pages, string Torn) LoseTwoPages(int seed, PowerLossMode mode)
    {
        var fs = NewFileSystem(seed);
        fs.Mode = mode;
        using var file = Create(fs, "f");
        file.Write(0, new byte[8192]);
        file.Flush();
        fs.SyncDirectory(Dir);
        file.Write(0, Enumerable.Repeat((byte)0xFF, 8192).ToArray());
        fs.PowerLoss();

        using var reopened = fs.OpenFile(file.Path, FileOpenMode.Open);
        var bytes = ReadAll(reopened);
        string Kind(ReadOnlySpan<byte> page) =>
            !page.ContainsAnyExcept((byte)0) ? "o" : !page.ContainsAnyExcept((byte)0xFF) ? "n" : "m";
        return (Kind(bytes.AsSpan(0, 4096)) + Kind(bytes.AsSpan(4096)), Kind(bytes.AsSpan(0, 4096)));
    }

    private static FaultFileSystem NewFileSystem(int seed = 0)
    {
        var fs = new FaultFileSystem(seed);
        fs.CreateDirectory(Dir);
        return fs;
    }

    private static IStorageFile Create(FaultFileSystem fs, string name) => fs.OpenFile(Path.Combine(Dir, name), FileOpenMode.CreateNew);

    private static List<string> Names(FaultFileSystem fs) =>
        fs.ListFiles(Dir, "").Select(p => Path.GetFileName(p)!).Order(StringComparer.Ordinal).ToList();

    private static byte[] ReadAll(IStorageFile file)
    {
        var bytes = new byte[file.Length];
        Assert.Equal(bytes.Length, file.Read(0, bytes));
        return bytes;
    }
}

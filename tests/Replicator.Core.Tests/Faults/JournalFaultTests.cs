using Microsoft.Extensions.Logging.Abstractions;
using Replicator.Core.Metadata;
using Replicator.Core.Tests.Support.Faults;

namespace Replicator.Core.Tests.Faults;

/// <summary>The pool's metadata journal and checkpoints when the disk fails under them: what the fault runs found, one test each.</summary>
public sealed class JournalFaultTests
{
    private const string Directory = "/pool";
    private const uint Volume = 1;
    private const int RecordBytes = 37;

    [Fact]
    public void A_batch_a_full_disk_cut_short_is_never_replayed_after_the_batch_that_reused_its_place()
    {
        var (files, store) = NewStore();
        var unit = Fill(store, until: s => 4096 - (s.JournalLength % 4096) is >= 2 * RecordBytes and < 3 * RecordBytes);
        store.Flush();
        files.SpaceLeft = 0;

        Assert.Throws<IOException>(() => store.Commit([Mapped(unit), Mapped(unit + 1), Mapped(unit + 2)]));

        files.ClearFaults();
        store.Commit(Mapped(unit + 10));
        store.Flush();
        var expected = Mappings(store.State);
        files.PowerLoss();
        using var reopened = PoolMetadataStore.Open(files, Directory, NullLogger.Instance);
        Assert.Equal(expected, Mappings(reopened.State));
    }

    [Fact]
    public void After_an_fsync_of_the_journal_failed_a_flush_that_succeeds_makes_every_record_durable()
    {
        var (files, store) = NewStore();
        store.Flush();
        var unit = Fill(store, until: s => s.JournalLength > 4096 + 100);
        files.FailNext(IoOperation.Flush, Errno.EIO, p => p.Contains("/journal.", StringComparison.Ordinal));
        try
        {
            store.Flush();
        }
        catch (IOException)
        {
        }

        Fill(store, until: s => s.JournalLength > 3 * 4096, unit);
        store.Flush();
        var expected = Mappings(store.State);
        files.PowerLoss();

        using var reopened = PoolMetadataStore.Open(files, Directory, NullLogger.Instance);
        Assert.Equal(expected, Mappings(reopened.State));
    }

    [Fact]
    public void A_checkpoint_the_disk_refused_does_not_stop_later_ones_and_loses_nothing()
    {
        var (files, store) = NewStore();
        var unit = Fill(store, until: s => s.JournalLength > 1000);
        files.SpaceLeft = 0;
        Assert.Throws<IOException>(store.Checkpoint);
        files.ClearFaults();

        unit = Fill(store, until: s => s.JournalLength > 2000, unit);
        store.Checkpoint();
        Fill(store, until: s => s.JournalLength > 500, unit);
        store.Flush();
        var expected = Mappings(store.State);
        files.PowerLoss();

        using var reopened = PoolMetadataStore.Open(files, Directory, NullLogger.Instance);
        Assert.Equal(expected, Mappings(reopened.State));
    }

    [Fact]
    public void A_power_loss_at_any_step_of_a_checkpoint_keeps_every_flushed_record()
    {
        for (var cut = 1; ; cut++)
        {
            var (files, store) = NewStore();
            Fill(store, until: s => s.JournalLength > 3000);
            store.Flush();
            var expected = Mappings(store.State);
            files.CutPowerAt(cut);
            var completed = false;
            try
            {
                store.Checkpoint();
                completed = true;
            }
            catch (PowerCutException)
            {
            }

            files.PowerLoss();
            using var reopened = PoolMetadataStore.Open(files, Directory, NullLogger.Instance);
            Assert.Equal(expected, Mappings(reopened.State));
            if (completed)
            {
                return;
            }
        }
    }

    private static (FaultFileSystem Files, PoolMetadataStore Store) NewStore()
    {
        var files = new FaultFileSystem();
        files.CreateDirectory(Directory);
        var store = PoolMetadataStore.Create(files, Directory, 65536, 4096L * 65536);
        store.Commit(JournalRecord.VolumeCreated(Volume, Guid.NewGuid(), "v", 1L << 30));
        return (files, store);
    }

    /// <summary>Maps one unit after another (unit n to extent n) until <paramref name="until"/>; returns the next unit.</summary>
    private static long Fill(PoolMetadataStore store, Func<PoolMetadataStore, bool> until, long unit = 0)
    {
        while (!until(store))
        {
            store.Commit(Mapped(unit++));
        }

        return unit;
    }

    private static JournalRecord Mapped(long unit) => JournalRecord.UnitMapped(Volume, unit, unit);

    private static List<(long Unit, long Extent)> Mappings(PoolState state) => state.Get(Volume).Map.Entries().OrderBy(e => e.Unit).ToList();
}

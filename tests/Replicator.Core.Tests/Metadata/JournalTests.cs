using Microsoft.Extensions.Logging.Abstractions;
using Replicator.Core.Storage;
using Replicator.Core.Metadata;

namespace Replicator.Core.Tests.Metadata;

public class JournalTests
{
    public static readonly JournalRecord[] Samples =
    [
        JournalRecord.PoolFileAdded(1 << 30),
        JournalRecord.VolumeCreated(1, Guid.Parse("0b4f2f8e-5a43-4c55-8d1c-7c3bb0d2a001"), "vol0", 1L << 30),
        JournalRecord.UnitMapped(1, 12345, 6789),
        JournalRecord.UnitUnmapped(1, 12345),
        JournalRecord.VolumeResized(1, 2L << 30),
        JournalRecord.VolumeDeleted(1),
        JournalRecord.VolumeCreated(2, Guid.Parse("0b4f2f8e-5a43-4c55-8d1c-7c3bb0d2a002"), "pacs-archive.2026_a", 16L << 40),
    ];

    [Fact]
    public void Every_record_type_round_trips()
    {
        var buffer = new byte[4096];
        for (var i = 0; i < Samples.Length; i++)
        {
            var n = JournalCodec.Encode(Samples[i], (ulong)i + 100, buffer);
            Assert.True(JournalCodec.TryDecode(buffer.AsSpan(0, n), out var decoded, out var seq, out var consumed, out var problem), problem);
            Assert.Equal(Samples[i], decoded);
            Assert.Equal((ulong)i + 100, seq);
            Assert.Equal(n, consumed);
        }
    }

    [Fact]
    public void Every_prefix_of_a_record_is_incomplete_and_consumes_nothing()
    {
        var buffer = new byte[4096];
        var n = JournalCodec.Encode(Samples[1], 1, buffer);
        for (var cut = 0; cut < n; cut++)
        {
            Assert.False(JournalCodec.TryDecode(buffer.AsSpan(0, cut), out _, out _, out var consumed, out _));
            Assert.Equal(0, consumed);
        }
    }

    [Fact]
    public void A_flipped_bit_anywhere_in_a_record_is_detected()
    {
        var buffer = new byte[4096];
        var n = JournalCodec.Encode(Samples[2], 1, buffer);
        for (var i = 0; i < n; i++)
        {
            for (var bit = 0; bit < 8; bit++)
            {
                var copy = buffer.AsSpan(0, n).ToArray();
                copy[i] ^= (byte)(1 << bit);
                Assert.False(JournalCodec.TryDecode(copy, out _, out _, out _, out var problem), $"byte {i} bit {bit}");
                Assert.NotNull(problem);
            }
        }
    }

    [Fact]
    public void Replay_after_a_cut_at_every_byte_of_the_last_batch_keeps_exactly_the_whole_records()
    {
        using var dir = new TempDirectory();
        var path = dir.File("journal");
        using (var journal = MetadataJournal.Create(PhysicalFileSystem.Instance, path, 1))
        {
            journal.Append(Samples.AsSpan(0, 3));
        }

        var intact = new FileInfo(path).Length;
        using (var journal = MetadataJournal.Replay(PhysicalFileSystem.Instance, path, 0, _ => { }, out _))
        {
            journal.Append(Samples.AsSpan(3, 2));
        }

        var full = File.ReadAllBytes(path);
        var secondRecordEnd = intact + Encode(Samples[3], 4).Length;
        for (var cut = intact; cut < full.Length; cut++)
        {
            File.WriteAllBytes(path, full.AsSpan(0, (int)cut).ToArray());
            var applied = new List<JournalRecord>();
            using (var journal = MetadataJournal.Replay(PhysicalFileSystem.Instance, path, 0, applied.Add, out var result))
            {
                var expected = cut >= secondRecordEnd ? 4 : 3;
                Assert.Equal(Samples.Take(expected), applied);
                Assert.Equal(cut - (cut >= secondRecordEnd ? secondRecordEnd : intact), result.DroppedBytes);
                Assert.Equal((ulong)expected + 1, journal.NextSequence);
            }

            // The torn tail is gone from the file, so what is appended next follows intact records.
            Assert.Equal(cut >= secondRecordEnd ? secondRecordEnd : intact, new FileInfo(path).Length);
        }
    }

    [Fact]
    public void Records_appended_after_a_torn_tail_replay_in_order()
    {
        using var dir = new TempDirectory();
        var path = dir.File("journal");
        using (var journal = MetadataJournal.Create(PhysicalFileSystem.Instance, path, 1))
        {
            journal.Append(Samples.AsSpan(0, 2));
        }

        File.AppendAllText(path, "garbage from a torn write");
        using (var journal = MetadataJournal.Replay(PhysicalFileSystem.Instance, path, 0, _ => { }, out var result))
        {
            Assert.Equal(2, result.Applied);
            Assert.True(result.DroppedBytes > 0);
            journal.Append(Samples.AsSpan(2, 1));
        }

        var applied = new List<JournalRecord>();
        using (MetadataJournal.Replay(PhysicalFileSystem.Instance, path, 0, applied.Add, out var again))
        {
            Assert.Equal(0, again.DroppedBytes);
        }

        Assert.Equal(Samples.Take(3), applied);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3)]
    public void A_bad_record_followed_by_intact_ones_is_damage_not_a_torn_tail_and_nothing_is_applied_or_cut(int damaged)
    {
        using var dir = new TempDirectory();
        var path = dir.File("journal");
        using (var journal = MetadataJournal.Create(PhysicalFileSystem.Instance, path, 1))
        {
            journal.Append(Samples.AsSpan(0, 5));
        }

        var at = Enumerable.Range(0, damaged).Sum(i => Encode(Samples[i], (ulong)i + 1).Length) + JournalCodec.PrefixSize + 4;
        var bytes = File.ReadAllBytes(path);
        bytes[at] ^= 0x10;
        File.WriteAllBytes(path, bytes);

        var applied = new List<JournalRecord>();
        var e = Assert.Throws<StorageDamagedException>(() => MetadataJournal.Replay(PhysicalFileSystem.Instance, path, 0, applied.Add, out _));
        Assert.Contains("that is not a torn tail", e.Message);
        Assert.Contains(path, e.Message);
        Assert.Empty(applied);
        Assert.Equal(bytes, File.ReadAllBytes(path));
    }

    [Fact]
    public void A_synced_record_is_followed_by_its_sync_mark_so_damage_to_it_is_not_a_torn_tail_while_an_unsynced_one_is()
    {
        using var dir = new TempDirectory();
        var path = dir.File("journal");
        long synced;
        using (var journal = MetadataJournal.Create(PhysicalFileSystem.Instance, path, 1))
        {
            journal.Append(Samples.AsSpan(0, 2));
            synced = journal.Length;
            journal.Append([JournalRecord.SyncMark(synced)]);
            journal.Append(Samples.AsSpan(2, 1));
        }

        var bytes = File.ReadAllBytes(path);

        // The record after the mark was not synced: damage to it is a torn tail, cut off.
        var tail = (byte[])bytes.Clone();
        tail[^3] ^= 0x01;
        File.WriteAllBytes(path, tail);
        using (MetadataJournal.Replay(PhysicalFileSystem.Instance, path, 0, _ => { }, out var result))
        {
            Assert.Equal(3, result.Applied);
            Assert.True(result.DroppedBytes > 0);
        }

        // The last record before the mark was synced: damage to it is damage, even with nothing else after the mark.
        var synchronous = bytes.AsSpan(0, (int)synced + Encode(JournalRecord.SyncMark(synced), 3).Length).ToArray();
        synchronous[(int)synced - 3] ^= 0x01;
        File.WriteAllBytes(path, synchronous);
        var e = Assert.Throws<StorageDamagedException>(() => MetadataJournal.Replay(PhysicalFileSystem.Instance, path, 0, _ => { }, out _));
        Assert.Contains("an intact record (sequence 3) follows", e.Message, StringComparison.Ordinal);
        Assert.Equal(synchronous, File.ReadAllBytes(path));
    }

    [Fact]
    public void An_intact_record_whose_sequence_does_not_follow_is_damage()
    {
        using var dir = new TempDirectory();
        var path = dir.File("journal");
        using (var journal = MetadataJournal.Create(PhysicalFileSystem.Instance, path, 1))
        {
            journal.Append(Samples.AsSpan(0, 2));
        }

        File.AppendAllBytes(path, Encode(Samples[2], 7));
        var e = Assert.Throws<StorageDamagedException>(() => MetadataJournal.Replay(PhysicalFileSystem.Instance, path, 0, _ => { }, out _));
        Assert.Contains("has sequence 7 where 3 was due", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_flush_that_synced_new_records_marks_how_far_and_one_with_nothing_new_writes_nothing()
    {
        using var dir = new TempDirectory();
        using var store = PoolMetadataStore.Create(PhysicalFileSystem.Instance, dir.Path, 65536, 1 << 30);
        store.Commit(JournalRecord.VolumeCreated(1, Guid.NewGuid(), "v", 1 << 30));
        var before = store.JournalLength;
        store.Flush();
        var marked = store.JournalLength;
        Assert.True(marked > before);
        store.Flush();
        Assert.Equal(marked, store.JournalLength);

        var records = new List<JournalRecord>();
        using (MetadataJournal.Replay(PhysicalFileSystem.Instance, Directory.GetFiles(dir.Path, "journal.*").Single(), 0, records.Add, out _))
        {
        }

        Assert.Equal([JournalRecordType.VolumeCreated, JournalRecordType.SyncMark], records.Select(r => r.Type));
        Assert.Equal(before, records[1].SyncedLength);
    }

    [Fact]
    public void Replay_skips_records_already_in_the_snapshot()
    {
        using var dir = new TempDirectory();
        var path = dir.File("journal");
        using (var journal = MetadataJournal.Create(PhysicalFileSystem.Instance, path, 1))
        {
            journal.Append(Samples.AsSpan(0, 4));
        }

        var applied = new List<JournalRecord>();
        using (MetadataJournal.Replay(PhysicalFileSystem.Instance, path, 2, applied.Add, out _))
        {
        }

        Assert.Equal(Samples.Skip(2).Take(2), applied);
    }

    [Fact]
    public void Metadata_store_survives_reopen_and_checkpoint()
    {
        using var dir = new TempDirectory();
        var id = Guid.NewGuid();
        using (var store = PoolMetadataStore.Create(PhysicalFileSystem.Instance, dir.Path, 65536, 1 << 30))
        {
            store.Commit(JournalRecord.VolumeCreated(1, id, "v", 1 << 30));
            store.Commit(JournalRecord.UnitMapped(1, 10, 3));
            store.Checkpoint();
            store.Commit(JournalRecord.UnitMapped(1, 11, 4));
            store.Commit(JournalRecord.UnitUnmapped(1, 10));
        }

        using var reopened = PoolMetadataStore.Open(PhysicalFileSystem.Instance, dir.Path, NullLogger.Instance);
        var volume = reopened.State.Find("v")!;
        Assert.Equal(id, volume.Id);
        Assert.False(volume.Map.TryGet(10, out _));
        Assert.True(volume.Map.TryGet(11, out var extent));
        Assert.Equal(4, extent);
        Assert.Equal(1, reopened.State.Used.SetCount);
        Assert.Single(Directory.GetFiles(dir.Path, "journal.*"));
    }

    [Fact]
    public void A_crash_between_new_journal_and_snapshot_rename_loses_nothing()
    {
        using var dir = new TempDirectory();
        using (var store = PoolMetadataStore.Create(PhysicalFileSystem.Instance, dir.Path, 65536, 1 << 30))
        {
            store.Commit(JournalRecord.VolumeCreated(1, Guid.NewGuid(), "v", 1 << 30));
            store.Commit(JournalRecord.UnitMapped(1, 1, 1));
        }

        // What a checkpoint that died before renaming its snapshot leaves: the old snapshot,
        // the old journal, and records already appended to the next journal file.
        using (var next = MetadataJournal.Create(PhysicalFileSystem.Instance, Path.Combine(dir.Path, "journal.000002"), 3))
        {
            next.Append([JournalRecord.UnitMapped(1, 2, 2)]);
        }

        using var reopened = PoolMetadataStore.Open(PhysicalFileSystem.Instance, dir.Path, NullLogger.Instance);
        var map = reopened.State.Find("v")!.Map;
        Assert.True(map.TryGet(1, out _));
        Assert.True(map.TryGet(2, out _));
    }

    [Fact]
    public void A_damaged_snapshot_is_refused_with_a_clear_error()
    {
        using var dir = new TempDirectory();
        using (PoolMetadataStore.Create(PhysicalFileSystem.Instance, dir.Path, 65536, 1 << 30))
        {
        }

        var path = Path.Combine(dir.Path, PoolMetadataStore.SnapshotFileName);
        var bytes = File.ReadAllBytes(path);
        bytes[12] ^= 0xff;
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<InvalidDataException>(() => PoolMetadataStore.Open(PhysicalFileSystem.Instance, dir.Path, NullLogger.Instance));
        Assert.Contains("checksum", e.Message);
    }

    private static byte[] Encode(JournalRecord record, ulong sequence)
    {
        var buffer = new byte[4096];
        return buffer.AsSpan(0, JournalCodec.Encode(record, sequence, buffer)).ToArray();
    }
}

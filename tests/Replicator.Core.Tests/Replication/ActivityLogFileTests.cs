using Replicator.Core.Replication;
using Replicator.Core.Storage;

namespace Replicator.Core.Tests.Replication;

public class ActivityLogFileTests
{
    private const int Slots = 16;
    private const long E = 4L << 20;
    private const long SlotA = 4096;
    private const long SlotB = 8192;

    [Fact]
    public void A_new_log_is_empty_at_sequence_zero_and_cannot_be_created_twice()
    {
        using var dir = new TempDirectory();
        var path = dir.File("al");
        ActivityLogFile.Create(PhysicalFileSystem.Instance, path, Slots, E);
        using (var file = ActivityLogFile.Open(PhysicalFileSystem.Instance, path, out var loaded))
        {
            Assert.Equal(0, loaded.Sequence);
            Assert.Empty(loaded.Extents);
            Assert.Equal(Slots, file.Slots);
            Assert.Equal(E, file.ExtentSize);
        }

        Assert.Throws<IOException>(() => ActivityLogFile.Create(PhysicalFileSystem.Instance, path, Slots, E));
    }

    [Fact]
    public void The_reloaded_set_is_the_last_one_written()
    {
        using var dir = new TempDirectory();
        var path = dir.File("al");
        ActivityLogFile.Create(PhysicalFileSystem.Instance, path, Slots, E);
        using (var file = ActivityLogFile.Open(PhysicalFileSystem.Instance, path, out _))
        {
            Assert.True(file.Write(new ActivityLogSnapshot(1, [1, 2])));
            Assert.True(file.Write(new ActivityLogSnapshot(5, [2, 7, 9])));
            Assert.False(file.Write(new ActivityLogSnapshot(4, [3])));
            Assert.False(file.Write(new ActivityLogSnapshot(5, [3])));
        }

        using var reopened = ActivityLogFile.Open(PhysicalFileSystem.Instance, path, out var loaded);
        Assert.Equal(new ActivityLogSnapshot(5, [2, 7, 9]).Sequence, loaded.Sequence);
        Assert.Equal([2L, 7L, 9L], loaded.Extents);
    }

    [Fact]
    public void Updates_alternate_between_the_slots_so_a_damaged_newest_slot_leaves_the_previous_set()
    {
        using var dir = new TempDirectory();
        var path = dir.File("al");
        ActivityLogFile.Create(PhysicalFileSystem.Instance, path, Slots, E);
        using (var file = ActivityLogFile.Open(PhysicalFileSystem.Instance, path, out _))
        {
            file.Write(new ActivityLogSnapshot(1, [10]));
            file.Write(new ActivityLogSnapshot(2, [10, 11]));
            file.Write(new ActivityLogSnapshot(3, [12]));
        }

        Assert.Equal(3, SequenceIn(path, SlotB));
        Assert.Equal(2, SequenceIn(path, SlotA));
        Damage(path, SlotB + 20);
        using var reopened = ActivityLogFile.Open(PhysicalFileSystem.Instance, path, out var loaded);
        Assert.Equal(2, loaded.Sequence);
        Assert.Equal([10L, 11L], loaded.Extents);
    }

    [Fact]
    public void After_reopening_the_next_write_goes_to_the_slot_not_holding_the_newest_record()
    {
        using var dir = new TempDirectory();
        var path = dir.File("al");
        ActivityLogFile.Create(PhysicalFileSystem.Instance, path, Slots, E);
        using (var file = ActivityLogFile.Open(PhysicalFileSystem.Instance, path, out _))
        {
            file.Write(new ActivityLogSnapshot(1, [1]));
        }

        using (var file = ActivityLogFile.Open(PhysicalFileSystem.Instance, path, out _))
        {
            file.Write(new ActivityLogSnapshot(2, [2]));
        }

        Assert.Equal(2, SequenceIn(path, SlotA));
        Assert.Equal(1, SequenceIn(path, SlotB));
    }

    [Fact]
    public void A_write_torn_at_any_byte_leaves_the_previous_set_or_the_new_one_never_a_mix()
    {
        using var dir = new TempDirectory();
        var path = dir.File("al");
        ActivityLogFile.Create(PhysicalFileSystem.Instance, path, Slots, E);
        using (var file = ActivityLogFile.Open(PhysicalFileSystem.Instance, path, out _))
        {
            file.Write(new ActivityLogSnapshot(1, [1, 2, 3]));
            file.Write(new ActivityLogSnapshot(2, [4, 5, 6, 7, 8]));
        }

        var before = File.ReadAllBytes(path);
        using (var file = ActivityLogFile.Open(PhysicalFileSystem.Instance, path, out _))
        {
            file.Write(new ActivityLogSnapshot(3, [9]));
        }

        var after = File.ReadAllBytes(path);
        var recordLength = 16 + 8 + 4;
        for (var cut = 0; cut <= recordLength; cut++)
        {
            var torn = (byte[])before.Clone();
            Array.Copy(after, SlotB, torn, SlotB, cut);
            File.WriteAllBytes(path, torn);
            using var file = ActivityLogFile.Open(PhysicalFileSystem.Instance, path, out var loaded);
            var expected = cut == recordLength ? new long[] { 9 } : [4, 5, 6, 7, 8];
            Assert.Equal(expected, loaded.Extents);
        }
    }

    [Fact]
    public void A_file_cut_in_the_second_slot_loads_the_first()
    {
        using var dir = new TempDirectory();
        var path = dir.File("al");
        ActivityLogFile.Create(PhysicalFileSystem.Instance, path, Slots, E);
        using (var file = ActivityLogFile.Open(PhysicalFileSystem.Instance, path, out _))
        {
            file.Write(new ActivityLogSnapshot(1, [1]));
            file.Write(new ActivityLogSnapshot(2, [2]));
            file.Write(new ActivityLogSnapshot(3, [3]));
        }

        using (var stream = new FileStream(path, FileMode.Open))
        {
            stream.SetLength(SlotB + 20);
        }

        using (ActivityLogFile.Open(PhysicalFileSystem.Instance, path, out var loaded))
        {
            Assert.Equal([2L], loaded.Extents);
        }
    }

    [Theory]
    [InlineData(new[] { SlotA + 2, SlotB + 10 })]
    [InlineData(new[] { 3L })]
    [InlineData(new[] { 20L })]
    public void Damage_that_leaves_no_intact_record_or_header_is_a_clear_error(long[] offsets)
    {
        using var dir = new TempDirectory();
        var path = dir.File("al");
        ActivityLogFile.Create(PhysicalFileSystem.Instance, path, Slots, E);
        using (var file = ActivityLogFile.Open(PhysicalFileSystem.Instance, path, out _))
        {
            file.Write(new ActivityLogSnapshot(1, [1]));
        }

        foreach (var offset in offsets)
        {
            Damage(path, offset);
        }

        var error = Assert.Throws<StorageDamagedException>(() => ActivityLogFile.Open(PhysicalFileSystem.Instance, path, out _));
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_snapshot_larger_than_the_slots_is_refused()
    {
        using var dir = new TempDirectory();
        var path = dir.File("al");
        ActivityLogFile.Create(PhysicalFileSystem.Instance, path, Slots, E);
        using var file = ActivityLogFile.Open(PhysicalFileSystem.Instance, path, out _);
        Assert.Throws<ArgumentException>(() => file.Write(new ActivityLogSnapshot(1, Enumerable.Range(0, Slots + 1).Select(i => (long)i).ToArray())));
    }

    [Fact]
    public void After_a_crash_in_a_write_storm_the_loaded_set_covers_every_write_that_had_started()
    {
        using var dir = new TempDirectory();
        var path = dir.File("al");
        ActivityLogFile.Create(PhysicalFileSystem.Instance, path, Slots, E);
        var random = new Random(5);
        var inFlight = new List<long>();
        ActivityLogSnapshot lastWritten;
        using (var file = ActivityLogFile.Open(PhysicalFileSystem.Instance, path, out lastWritten))
        {
            var log = ActivityLog.Restore(lastWritten, Slots, E);
            for (var step = 0; step < 2000; step++)
            {
                if (inFlight.Count > 0 && random.Next(2) == 0)
                {
                    var i = random.Next(inFlight.Count);
                    log.End(inFlight[i], 1, stamp: step + 1);
                    inFlight.RemoveAt(i);
                    continue;
                }

                var offset = random.NextInt64(40) * E + random.Next(4096);
                var begin = log.Begin(offset, 1);
                if (begin.Status == ActivityLogStatus.MustPersist)
                {
                    var snapshot = log.Snapshot();
                    file.Write(snapshot);
                    log.MarkDurable(snapshot.Sequence);
                    lastWritten = snapshot;
                }

                if (begin.Status != ActivityLogStatus.Full)
                {
                    inFlight.Add(offset);
                }
            }
        }

        using var reopened = ActivityLogFile.Open(PhysicalFileSystem.Instance, path, out var loaded);
        Assert.Equal(lastWritten.Sequence, loaded.Sequence);
        Assert.Equal(lastWritten.Extents, loaded.Extents);
        Assert.All(inFlight, offset => Assert.Contains(offset / E, loaded.Extents));
    }

    private static long SequenceIn(string path, long slotOffset)
    {
        var bytes = File.ReadAllBytes(path);
        return BitConverter.ToInt64(bytes, (int)slotOffset + 4);
    }

    private static void Damage(string path, long offset)
    {
        using var stream = new FileStream(path, FileMode.Open);
        stream.Position = offset;
        var b = stream.ReadByte();
        stream.Position = offset;
        stream.WriteByte((byte)(b ^ 0x01));
    }
}

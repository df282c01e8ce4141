using System.Buffers.Binary;
using Replicator.Core.Hashing;
using Replicator.Core.Replication;
using Replicator.Core.Storage;

namespace Replicator.Core.Tests.Replication;

public class ReplicaMetadataFileTests
{
    private static readonly ReplicaMetadata Sample = new(
        Guid.Parse("5c0ffee0-1234-4321-8765-0123456789ab"),
        Guid.Parse("feedface-0000-4000-8000-00000000beef"),
        new GenerationIds(0xB2, 0xA1, 0x11, 0x22),
        ReplicaDiskState.Outdated,
        ReplicaFlags.CrashedWhileConnected | ReplicaFlags.FullSyncRequired,
        65536,
        2048,
        8L << 20);

    [Fact]
    public void Metadata_written_is_read_back_equal_and_leaves_no_temporary_file()
    {
        using var dir = new TempDirectory();
        var path = dir.File("vol.replica");
        ReplicaMetadataFile.Write(PhysicalFileSystem.Instance, path, ReplicaMetadata.ForNewVolume(Guid.NewGuid(), Guid.NewGuid()));
        ReplicaMetadataFile.Write(PhysicalFileSystem.Instance, path, Sample);
        Assert.Equal(Sample, ReplicaMetadataFile.Read(PhysicalFileSystem.Instance, path));
        Assert.Equal([path], Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void A_new_volume_is_created_together_and_up_to_date_with_the_default_geometry()
    {
        var metadata = ReplicaMetadata.ForNewVolume(Guid.NewGuid(), Guid.NewGuid());
        Assert.Equal(GenerationIds.NewVolume, metadata.Generation);
        Assert.Equal(ReplicaDiskState.UpToDate, metadata.DiskState);
        Assert.Equal(ReplicaFlags.None, metadata.Flags);
        Assert.Equal((4096, 1024, 4L << 20), (metadata.BitmapGranularity, metadata.ActivityLogSlots, metadata.ActivityLogExtentSize));
        Assert.Throws<ArgumentOutOfRangeException>(() => ReplicaMetadata.ForNewVolume(Guid.NewGuid(), Guid.NewGuid(), bitmapGranularity: 512));
    }

    [Fact]
    public void Every_flipped_bit_is_a_clear_error()
    {
        var bytes = ReplicaMetadataFile.Serialize(Sample);
        for (var i = 0; i < bytes.Length; i++)
        {
            for (var bit = 0; bit < 8; bit++)
            {
                var copy = (byte[])bytes.Clone();
                copy[i] ^= (byte)(1 << bit);
                Assert.Throws<InvalidDataException>(() => ReplicaMetadataFile.Deserialize(copy));
            }
        }
    }

    [Fact]
    public void A_file_cut_at_any_length_or_extended_is_a_clear_error_naming_the_file()
    {
        using var dir = new TempDirectory();
        var path = dir.File("vol.replica");
        var bytes = ReplicaMetadataFile.Serialize(Sample);
        for (var length = 0; length < bytes.Length; length++)
        {
            File.WriteAllBytes(path, bytes.AsSpan(0, length).ToArray());
            var error = Assert.Throws<StorageDamagedException>(() => ReplicaMetadataFile.Read(PhysicalFileSystem.Instance, path));
            Assert.Contains(path, error.Message, StringComparison.Ordinal);
        }

        File.WriteAllBytes(path, [.. bytes, 0]);
        Assert.Throws<StorageDamagedException>(() => ReplicaMetadataFile.Read(PhysicalFileSystem.Instance, path));
    }

    [Theory]
    [InlineData(8, 2)]
    [InlineData(76, 9)]
    [InlineData(80, 8)]
    [InlineData(84, 2048)]
    [InlineData(88, 3)]
    [InlineData(92, 12345)]
    public void Well_checksummed_but_impossible_values_are_refused(int offset, int value)
    {
        var bytes = ReplicaMetadataFile.Serialize(Sample);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(offset), value);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(100), Crc32C.Compute(bytes.AsSpan(0, 100)));
        Assert.Throws<InvalidDataException>(() => ReplicaMetadataFile.Deserialize(bytes));
    }

    [Fact]
    public void A_missing_file_is_reported_as_missing()
    {
        using var dir = new TempDirectory();
        Assert.Throws<FileNotFoundException>(() => ReplicaMetadataFile.Read(PhysicalFileSystem.Instance, dir.File("none")));
    }

    [Fact]
    public void A_restart_after_dying_while_connected_records_the_crash()
    {
        var running = Sample with { Flags = ReplicaFlags.ConnectedAndUpToDate };
        var restarted = running.AfterRestart(out var crashed);
        Assert.True(crashed);
        Assert.Equal(ReplicaFlags.CrashedWhileConnected, restarted.Flags);
        Assert.True(restarted.Status.Crashed);

        var again = restarted.AfterRestart(out var crashedAgain);
        Assert.False(crashedAgain);
        Assert.Equal(restarted, again);
    }
}

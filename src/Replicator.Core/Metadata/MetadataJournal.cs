using Microsoft.Win32.SafeHandles;
using Replicator.Core.Storage;

namespace Replicator.Core.Metadata;

/// <summary>
/// One append-only journal file. Records are appended with a single positional write per batch,
/// so a batch reaches the page cache (and survives a kill -9 of the process) before the caller
/// acknowledges anything that depends on it; <see cref="Flush"/> makes it survive power loss.
/// </summary>
/// <remarks>
/// <para><b>Torn tail or damage.</b> A crash can tear only what was appended since the last sync: the
/// records at the end. So when replay meets a record that is cut short or fails its CRC, it is a torn
/// tail only if nothing intact follows it. Every flush that synced new records appends a
/// <see cref="JournalRecordType.SyncMark"/> right after them (naming the length synced; it reaches the
/// disk with the next flush, so it never claims more than was synced): a synced record is then followed
/// by an intact one as soon as its mark is durable, and damage to it (a bad sector, a stray write) cannot
/// pass for a torn tail. A bad record followed by an intact one, or an intact record whose sequence does
/// not follow, is damage: replay refuses with <see cref="StorageDamagedException"/> and changes nothing,
/// because cutting there would drop mappings of data that was flushed, and the pool would then punch
/// their extents. The one window left: the records synced by the last flush before a power loss that also
/// lost their mark, damaged afterwards. A power loss that persists a torn batch's sectors out of order can
/// make an unsynced tail look damaged: the node then refuses to start, which is safe and recoverable
/// (docs/recovery.md).</para>
/// </remarks>
public sealed class MetadataJournal : IDisposable
{
    private readonly SafeFileHandle _handle;
    private byte[] _buffer = new byte[4096];

    private MetadataJournal(string path, SafeFileHandle handle, long length, ulong nextSequence)
    {
        Path = path;
        _handle = handle;
        Length = length;
        NextSequence = nextSequence;
    }

    public string Path { get; }

    /// <summary>Bytes of valid records in the file.</summary>
    public long Length { get; private set; }

    public ulong NextSequence { get; private set; }

    public static MetadataJournal Create(string path, ulong nextSequence)
    {
        var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read);
        return new MetadataJournal(path, handle, 0, nextSequence);
    }

    /// <summary>
    /// Reads every intact record of the file in order, hands those after <paramref name="afterSequence"/>
    /// to <paramref name="apply"/>, cuts off a torn tail, and returns the journal ready to append.
    /// </summary>
    public static MetadataJournal Replay(string path, ulong afterSequence, Action<JournalRecord> apply, out JournalReplayResult result)
    {
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
        try
        {
            var bytes = new byte[RandomAccess.GetLength(handle)];
            var read = 0;
            while (read < bytes.Length)
            {
                var n = RandomAccess.Read(handle, bytes.AsSpan(read), read);
                if (n == 0)
                {
                    break;
                }

                read += n;
            }

            var position = 0;
            var expected = afterSequence + 1;
            var applied = 0;
            string? problem = null;
            var records = new List<(JournalRecord Record, ulong Sequence)>();
            while (position < read)
            {
                if (!JournalCodec.TryDecode(bytes.AsSpan(position, read - position), out var record, out var sequence, out var consumed, out problem))
                {
                    break;
                }

                if (sequence > afterSequence && sequence != expected)
                {
                    throw Damaged(path, position, $"the record at byte {position} is intact but has sequence {sequence} where {expected} was due");
                }

                if (sequence > afterSequence)
                {
                    records.Add((record, sequence));
                    expected++;
                }

                position += consumed;
            }

            if (position < read)
            {
                // Decide before applying anything: a refusal leaves the caller's state as it was.
                CheckTornTail(path, bytes.AsSpan(0, read), position, problem);
            }

            foreach (var (record, _) in records)
            {
                apply(record);
                applied++;
            }

            var dropped = bytes.Length - position;
            if (dropped > 0)
            {
                // The tail was never acknowledged as a whole; cut it so new records follow intact ones.
                RandomAccess.SetLength(handle, position);
                RandomAccess.FlushToDisk(handle);
            }

            result = new JournalReplayResult(applied, dropped, dropped > 0 ? problem ?? "unreadable tail" : null);
            return new MetadataJournal(path, handle, position, expected);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Appends the records in one write and returns the sequence number of the last.</summary>
    public ulong Append(ReadOnlySpan<JournalRecord> records)
    {
        var needed = 0;
        foreach (var record in records)
        {
            needed += JournalCodec.MaxEncodedSize(record);
        }

        if (_buffer.Length < needed)
        {
            _buffer = new byte[Math.Max(needed, _buffer.Length * 2)];
        }

        var written = 0;
        var sequence = NextSequence;
        foreach (var record in records)
        {
            written += JournalCodec.Encode(record, sequence++, _buffer.AsSpan(written));
        }

        RandomAccess.Write(_handle, _buffer.AsSpan(0, written), Length);
        Length += written;
        NextSequence = sequence;
        return sequence - 1;
    }

    public void Flush() => RandomAccess.FlushToDisk(_handle);

    public void Dispose() => _handle.Dispose();

    /// <summary>
    /// Throws <see cref="StorageDamagedException"/> unless the bad bytes at <paramref name="bad"/> are a torn tail, with no
    /// intact record after them (looked for at every byte: damage to a record's length would hide where the next begins).
    /// </summary>
    private static void CheckTornTail(string path, ReadOnlySpan<byte> bytes, int bad, string? problem)
    {
        for (var at = bad + 1; at + JournalCodec.PrefixSize < bytes.Length; at++)
        {
            if (JournalCodec.TryDecode(bytes[at..], out _, out var sequence, out _, out _))
            {
                throw Damaged(path, bad, $"the record at byte {bad} is bad ({problem}), but an intact record (sequence {sequence}) follows at byte {at}: that is not a torn tail");
            }
        }
    }

    private static StorageDamagedException Damaged(string path, long at, string what) =>
        new($"the pool's metadata journal {path} is damaged at byte {at}: {what}. The pool was not opened and nothing in it was changed");
}

/// <summary>What a replay found: records applied, and the bytes of a torn tail that were dropped (and why).</summary>
public readonly record struct JournalReplayResult(int Applied, long DroppedBytes, string? DropReason);

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
    private readonly IStorageFile _file;
    private byte[] _buffer = new byte[4096];

    private MetadataJournal(IStorageFile file, long length, ulong nextSequence)
    {
        _file = file;
        Length = length;
        NextSequence = nextSequence;
    }

    public string Path => _file.Path;

    /// <summary>Bytes of valid records in the file.</summary>
    public long Length { get; private set; }

    public ulong NextSequence { get; private set; }

    /// <summary>
    /// The file can no longer be trusted: an fsync of it failed (Linux then forgets the pages it did not
    /// write, so a later fsync succeeds without them and replay would stop at the hole), or a failed
    /// append could not be cut off. Its owner replaces it with a checkpoint before relying on it.
    /// </summary>
    public bool Damaged { get; private set; }

    /// <summary>Creates an empty journal file; its name is durable once the caller syncs the directory.</summary>
    public static MetadataJournal Create(IFileSystem files, string path, ulong nextSequence) =>
        new(files.OpenFile(path, FileOpenMode.CreateNew), 0, nextSequence);

    /// <summary>
    /// Reads every intact record of the file in order, hands those after <paramref name="afterSequence"/>
    /// to <paramref name="apply"/>, cuts off a torn tail, and returns the journal ready to append.
    /// </summary>
    public static MetadataJournal Replay(IFileSystem files, string path, ulong afterSequence, Action<JournalRecord> apply, out JournalReplayResult result)
    {
        var file = files.OpenFile(path, FileOpenMode.Open);
        try
        {
            var length = file.Length;
            if (length > Array.MaxLength)
            {
                throw new InvalidDataException($"journal {path} is {length} bytes, more than a journal ever holds");
            }

            var bytes = new byte[length];
            var read = file.Read(0, bytes);

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
                    throw DamageAt(path, position, $"the record at byte {position} is intact but has sequence {sequence} where {expected} was due");
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
                file.SetLength(position);
                file.Flush();
            }

            result = new JournalReplayResult(applied, dropped, dropped > 0 ? problem ?? "unreadable tail" : null);
            return new MetadataJournal(file, position, expected);
        }
        catch
        {
            file.Dispose();
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

        try
        {
            _file.Write(Length, _buffer.AsSpan(0, written));
        }
        catch (IOException)
        {
            // Part of the batch may be in the file now. The next batch reuses its sequence numbers at this
            // offset; shorter, it could leave a whole stale record after it, which replay would apply.
            // Cut the part off, durably.
            try
            {
                _file.SetLength(Length);
                _file.Flush();
            }
            catch (IOException)
            {
                Damaged = true;
            }

            throw;
        }

        Length += written;
        NextSequence = sequence;
        return sequence - 1;
    }

    public void Flush()
    {
        try
        {
            _file.Flush();
        }
        catch (IOException)
        {
            Damaged = true;
            throw;
        }
    }

    public void Dispose() => _file.Dispose();

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
                throw DamageAt(path, bad, $"the record at byte {bad} is bad ({problem}), but an intact record (sequence {sequence}) follows at byte {at}: that is not a torn tail");
            }
        }
    }

    private static StorageDamagedException DamageAt(string path, long at, string what) =>
        new($"the pool's metadata journal {path} is damaged at byte {at}: {what}. The pool was not opened and nothing in it was changed");
}

/// <summary>What a replay found: records applied, and the bytes of a torn tail that were dropped (and why).</summary>
public readonly record struct JournalReplayResult(int Applied, long DroppedBytes, string? DropReason);

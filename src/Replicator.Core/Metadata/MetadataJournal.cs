using Replicator.Core.Storage;

namespace Replicator.Core.Metadata;

/// <summary>
/// One append-only journal file. Records are appended with a single positional write per batch,
/// so a batch reaches the page cache (and survives a kill -9 of the process) before the caller
/// acknowledges anything that depends on it; <see cref="Flush"/> makes it survive power loss.
/// </summary>
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
            while (position < read)
            {
                if (!JournalCodec.TryDecode(bytes.AsSpan(position, read - position), out var record, out var sequence, out var consumed, out problem))
                {
                    break;
                }

                if (sequence <= afterSequence)
                {
                    position += consumed;
                    continue;
                }

                if (sequence != expected)
                {
                    problem = $"record sequence {sequence} does not follow {expected - 1}";
                    break;
                }

                apply(record);
                applied++;
                expected++;
                position += consumed;
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

        _file.Write(Length, _buffer.AsSpan(0, written));
        Length += written;
        NextSequence = sequence;
        return sequence - 1;
    }

    public void Flush() => _file.Flush();

    public void Dispose() => _file.Dispose();
}

/// <summary>What a replay found: records applied, and the bytes of a torn tail that were dropped (and why).</summary>
public readonly record struct JournalReplayResult(int Applied, long DroppedBytes, string? DropReason);

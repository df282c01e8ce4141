using System.Globalization;
using Microsoft.Extensions.Logging;
using Replicator.Core.Storage;

namespace Replicator.Core.Metadata;

/// <summary>
/// The pool's metadata on disk: a snapshot (<c>pool.meta</c>) plus the journal files written since
/// (<c>journal.NNNNNN</c>). Changes are appended to the current journal and then applied to
/// <see cref="State"/>; a checkpoint writes a new snapshot and starts the next journal file, so
/// replay after a crash reads one snapshot and a bounded amount of journal.
/// </summary>
/// <remarks>Not thread-safe: the pool serializes calls under its metadata lock.</remarks>
public sealed class PoolMetadataStore : IDisposable
{
    public const string SnapshotFileName = "pool.meta";
    private const string JournalPrefix = "journal.";

    private readonly string _directory;
    private MetadataJournal _journal;
    private ulong _generation;
    private long _markedLength;

    private PoolMetadataStore(string directory, PoolState state, MetadataJournal journal, ulong generation)
    {
        _directory = directory;
        State = state;
        _journal = journal;
        _generation = generation;
    }

    public PoolState State { get; }

    /// <summary>Bytes in the current journal file; the pool checkpoints when this grows large.</summary>
    public long JournalLength => _journal.Length;

    public static bool Exists(string directory) => File.Exists(Path.Combine(directory, SnapshotFileName));

    /// <summary>Creates the metadata of a new, empty pool with one file of <paramref name="firstFileCapacity"/> bytes.</summary>
    public static PoolMetadataStore Create(string directory, int extentSize, long firstFileCapacity)
    {
        if (Exists(directory))
        {
            throw new IOException($"a pool already exists in {directory}");
        }

        var state = new PoolState(extentSize);
        state.Apply(JournalRecord.PoolFileAdded(firstFileCapacity));
        const ulong generation = 1;
        var journal = MetadataJournal.Create(JournalPath(directory, generation), 1);
        Posix.WriteFileAtomically(Path.Combine(directory, SnapshotFileName), PoolSnapshot.Serialize(state, generation));
        return new PoolMetadataStore(directory, state, journal, generation);
    }

    /// <summary>Loads the snapshot and replays the journal files after it, dropping a torn tail.</summary>
    public static PoolMetadataStore Open(string directory, ILogger logger)
    {
        var state = PoolSnapshot.Deserialize(File.ReadAllBytes(Path.Combine(directory, SnapshotFileName)), out var generation);
        var journals = Directory.EnumerateFiles(directory, JournalPrefix + "*")
            .Select(path => (Path: path, Generation: ParseGeneration(path)))
            .Where(j => j.Generation >= generation)
            .OrderBy(j => j.Generation)
            .ToList();

        if (journals.Count == 0 || journals[0].Generation != generation)
        {
            throw new InvalidDataException($"journal {JournalPath(directory, generation)} named by the pool snapshot is missing");
        }

        MetadataJournal? journal = null;
        foreach (var (path, gen) in journals)
        {
            journal?.Dispose();
            journal = MetadataJournal.Replay(path, state.LastSequence, r =>
            {
                state.Apply(r);
                state.LastSequence++;
            }, out var result);
            generation = gen;
            if (result.DroppedBytes > 0)
            {
                logger.LogWarning("Dropped a torn journal tail of {Bytes} bytes from {Journal}: {Reason}. Nothing in it was acknowledged.",
                    result.DroppedBytes, path, result.DropReason);
            }
        }

        return new PoolMetadataStore(directory, state, journal!, generation);
    }

    /// <summary>Appends the records durably enough to survive a process kill, then applies them.</summary>
    public void Commit(ReadOnlySpan<JournalRecord> records)
    {
        if (records.IsEmpty)
        {
            return;
        }

        State.LastSequence = _journal.Append(records);
        foreach (var record in records)
        {
            State.Apply(record);
        }
    }

    public void Commit(in JournalRecord record) => Commit([record]);

    /// <summary>
    /// Makes every committed record durable (fsync), then, when that synced new records, appends a mark saying how
    /// far the journal is synced (see <see cref="MetadataJournal"/>): it reaches the disk with the next flush.
    /// </summary>
    public void Flush()
    {
        _journal.Flush();
        if (_journal.Length > _markedLength)
        {
            Commit(JournalRecord.SyncMark(_journal.Length));
            _markedLength = _journal.Length;
        }
    }

    /// <summary>Writes a snapshot of the current state and continues in a new, empty journal file.</summary>
    public void Checkpoint()
    {
        var next = _generation + 1;
        var journal = MetadataJournal.Create(JournalPath(_directory, next), State.LastSequence + 1);
        Posix.SyncDirectory(_directory);
        Posix.WriteFileAtomically(Path.Combine(_directory, SnapshotFileName), PoolSnapshot.Serialize(State, next));
        _journal.Dispose();
        File.Delete(JournalPath(_directory, _generation));
        _journal = journal;
        _generation = next;
        _markedLength = 0;
    }

    public void Dispose() => _journal.Dispose();

    private static string JournalPath(string directory, ulong generation) =>
        Path.Combine(directory, JournalPrefix + generation.ToString("D6", CultureInfo.InvariantCulture));

    private static ulong ParseGeneration(string path) =>
        ulong.TryParse(Path.GetFileName(path)[JournalPrefix.Length..], NumberStyles.None, CultureInfo.InvariantCulture, out var g)
            ? g
            : throw new InvalidDataException($"unexpected file {path} in the pool directory");
}

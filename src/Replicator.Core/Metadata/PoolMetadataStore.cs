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
/// <remarks>
/// <para>Not thread-safe: the pool serializes calls under its metadata lock.</para>
/// <para><b>When the disk fails.</b> A journal whose fsync failed is never trusted again: Linux forgets
/// the pages that fsync did not write, so a later fsync would succeed without them and replay would
/// stop at the hole they leave, dropping every record after it. The next flush (this one, and each
/// one after until it works) writes everything again instead, as a new snapshot and an empty journal
/// (<see cref="Checkpoint"/>), and only then reports the records durable.</para>
/// </remarks>
public sealed class PoolMetadataStore : IDisposable
{
    public const string SnapshotFileName = "pool.meta";
    public const string JournalPrefix = "journal.";

    private readonly IFileSystem _files;
    private readonly string _directory;
    private MetadataJournal _journal;
    private ulong _generation;
    private long _markedLength;

    /// <summary>A checkpoint got as far as the rename of its snapshot and failed: until one succeeds, nothing is known durable.</summary>
    private bool _mustCheckpoint;

    private PoolMetadataStore(IFileSystem files, string directory, PoolState state, MetadataJournal journal, ulong generation)
    {
        _files = files;
        _directory = directory;
        State = state;
        _journal = journal;
        _generation = generation;
    }

    public PoolState State { get; }

    /// <summary>Bytes in the current journal file; the pool checkpoints when this grows large.</summary>
    public long JournalLength => _journal.Length;

    public static bool Exists(IFileSystem files, string directory) => files.FileExists(Path.Combine(directory, SnapshotFileName));

    /// <summary>Creates the metadata of a new, empty pool with one file of <paramref name="firstFileCapacity"/> bytes.</summary>
    public static PoolMetadataStore Create(IFileSystem files, string directory, int extentSize, long firstFileCapacity)
    {
        if (Exists(files, directory))
        {
            throw new IOException($"a pool already exists in {directory}");
        }

        var state = new PoolState(extentSize);
        state.Apply(JournalRecord.PoolFileAdded(firstFileCapacity));
        const ulong generation = 1;
        var journal = MetadataJournal.Create(files, JournalPath(directory, generation), 1);
        try
        {
            // The snapshot's directory sync makes the journal's name durable too, before the pool exists.
            files.WriteAtomically(Path.Combine(directory, SnapshotFileName), PoolSnapshot.Serialize(state, generation));
        }
        catch
        {
            journal.Dispose();
            files.DeleteFile(JournalPath(directory, generation));
            throw;
        }

        return new PoolMetadataStore(files, directory, state, journal, generation);
    }

    /// <summary>Loads the snapshot and replays the journal files after it, dropping a torn tail.</summary>
    public static PoolMetadataStore Open(IFileSystem files, string directory, ILogger logger)
    {
        var state = PoolSnapshot.Deserialize(files.ReadAllBytes(Path.Combine(directory, SnapshotFileName)), out var generation);
        var journals = files.ListFiles(directory, JournalPrefix)
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
            journal = MetadataJournal.Replay(files, path, state.LastSequence, r =>
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

        return new PoolMetadataStore(files, directory, state, journal!, generation);
    }

    /// <summary>Appends the records durably enough to survive a process kill, then applies them. When it throws, nothing changed.</summary>
    public void Commit(ReadOnlySpan<JournalRecord> records)
    {
        if (records.IsEmpty)
        {
            return;
        }

        if (_journal.Damaged)
        {
            Checkpoint();
        }

        State.LastSequence = _journal.Append(records);
        foreach (var record in records)
        {
            State.Apply(record);
        }
    }

    public void Commit(in JournalRecord record) => Commit([record]);

    /// <summary>
    /// Makes every committed record durable: an fsync of the journal, or a checkpoint when the journal cannot be trusted.
    /// When the fsync synced new records, a mark saying how far the journal is synced follows them (see
    /// <see cref="MetadataJournal"/>): it reaches the disk with the next flush.
    /// </summary>
    public void Flush()
    {
        if (!_mustCheckpoint && !_journal.Damaged)
        {
            try
            {
                _journal.Flush();
            }
            catch (IOException)
            {
                // Damaged now: rewrite everything, as a checkpoint; if that fails too, its error is the one to report.
                Checkpoint();
                return;
            }

            MarkSynced();
            return;
        }

        Checkpoint();
    }

    /// <summary>
    /// Writes a snapshot of the current state and continues in a new, empty journal file. Crash-safe at
    /// every step: replay reads the snapshot and every journal from its generation on, so the new
    /// journal's name is made durable before the snapshot that names it, and records go to the new
    /// journal from the moment the snapshot's rename may have happened. When it throws before that,
    /// nothing changed; after it, the next flush checkpoints again.
    /// </summary>
    public void Checkpoint()
    {
        var next = _generation + 1;
        var nextPath = JournalPath(_directory, next);
        var snapshotPath = Path.Combine(_directory, SnapshotFileName);

        // A journal of this generation can only be left by an attempt that failed before it was used.
        _files.DeleteFile(nextPath);
        var journal = MetadataJournal.Create(_files, nextPath, State.LastSequence + 1);
        try
        {
            _files.SyncDirectory(_directory);
            _files.WriteTemporary(snapshotPath, PoolSnapshot.Serialize(State, next));
        }
        catch
        {
            journal.Dispose();
            throw;
        }

        _journal.Dispose();
        _journal = journal;
        _generation = next;
        _markedLength = 0;
        _mustCheckpoint = true;
        _files.ReplaceWithTemporary(snapshotPath);
        _mustCheckpoint = false;

        // The snapshot covers every record before the new journal: older journals are never read again,
        // so one that cannot be deleted now is only garbage, deleted by a later checkpoint.
        try
        {
            foreach (var path in _files.ListFiles(_directory, JournalPrefix).Where(p => ParseGeneration(p) < next))
            {
                _files.DeleteFile(path);
            }
        }
        catch (IOException)
        {
        }
    }

    public void Dispose() => _journal.Dispose();

    /// <summary>Appends the sync mark after records the last fsync made durable, when there are new ones.</summary>
    private void MarkSynced()
    {
        if (_journal.Length <= _markedLength)
        {
            return;
        }

        try
        {
            Commit(JournalRecord.SyncMark(_journal.Length));
            _markedLength = _journal.Length;
        }
        catch (IOException)
        {
            // The records are durable already; the mark only lets a replay tell damage from a torn tail. The next flush appends it.
        }
    }

    private static string JournalPath(string directory, ulong generation) =>
        Path.Combine(directory, JournalPrefix + generation.ToString("D6", CultureInfo.InvariantCulture));

    private static ulong ParseGeneration(string path) =>
        ulong.TryParse(Path.GetFileName(path)[JournalPrefix.Length..], NumberStyles.None, CultureInfo.InvariantCulture, out var g)
            ? g
            : throw new InvalidDataException($"unexpected file {path} in the pool directory");
}

using System.Text.Json;
using Replicator.Core.Storage;
using Replicator.Node.Configuration;

namespace Replicator.Node.Witness;

/// <summary>What the witness knows of one volume.</summary>
/// <param name="Holder">The node allowed to write the volume without its peer; null when nobody holds the vote (the pair was last seen in sync).</param>
/// <param name="Generation">The newest data set of the volume the witness knows: the one the holder writes as, or the one the pair was in sync at.</param>
/// <param name="ExpiresAt">Until when the holder may write without renewing.</param>
internal sealed record VoteRecord(string? Holder, ulong Generation, DateTimeOffset ExpiresAt);

/// <summary>The witness's answer to a vote request.</summary>
internal sealed record VoteAnswer(bool Granted, string? Holder, ulong HolderGeneration, double LeaseSeconds, string Reason);

/// <summary>
/// The witness's ledger: per volume, which node may write it alone, and the newest data set of the
/// volume it knows. Pure rules plus a JSON file, saved atomically and durably before any answer.
/// </summary>
/// <remarks>
/// <para>A node asks for the vote when it has lost its peer and wants to acknowledge a write the peer
/// will lack (or serve reads alone), naming the data set it holds (<c>current</c>), whether it
/// already holds changes its peer lacks (its <c>bitmap</c> id is not 0), and the data set it will write
/// as (<c>writingAs</c>). A node whose pair is in sync releases the vote, naming the data set the pair
/// holds; the witness keeps that as the volume's record. The rules that keep an outdated node from ever
/// writing or serving alone:</para>
/// <list type="number">
/// <item>The holder asks again: renewed, and the data set updated, so the witness knows the newest
/// data set before the holder acknowledges anything in it.</item>
/// <item>Another node asks while the holder's lease runs: refused.</item>
/// <item>A record without a holder, or whose lease ran out: granted only to a node that holds the
/// record's data set. A node whose data is older never gets the vote.</item>
/// <item>No record: granted only to a node that already writes alone as the data set it names (its
/// bitmap id is set and it keeps its current data set). Its peer cannot hold newer data: to write
/// alone after it, the peer needed the vote while this node's data set was on record, which rule 3
/// refuses. Any other node is refused: a witness without a record may have lost its ledger (a new
/// disk, a wiped directory), and the peer may have written alone with a vote the witness no longer
/// remembers. Once the pair is back in sync its release gives the witness a record again.</item>
/// </list>
/// <para>The holder stops writing before its lease ends at the witness (it counts from when it sent the
/// request), so a takeover never overlaps. After a witness restart every lease counts as just
/// renewed, for the same reason.</para>
/// </remarks>
internal sealed class WitnessBook
{
    private readonly Dictionary<Guid, VoteRecord> _records = [];
    private readonly Lock _lock = new();
    private readonly IFileSystem _files;
    private readonly string _path;

    /// <param name="path">The ledger file (<c>votes.json</c>); every change is in it, durably, before it is answered.</param>
    public WitnessBook(TimeSpan lease, IFileSystem files, string path)
    {
        Lease = lease;
        _files = files;
        _path = path;
        if (files.FileExists(path))
        {
            var stored = JsonSerializer.Deserialize<Dictionary<Guid, VoteRecord>>(files.ReadAllBytes(path), NodeConfig.JsonOptions) ?? [];
            foreach (var (volume, record) in stored)
            {
                _records[volume] = record.Holder is null ? record : record with { ExpiresAt = DateTimeOffset.UtcNow + lease };
            }
        }
    }

    public TimeSpan Lease { get; }

    /// <summary>The votes held now (records of pairs in sync are left out).</summary>
    public IReadOnlyDictionary<Guid, VoteRecord> Votes
    {
        get
        {
            lock (_lock)
            {
                return _records.Where(r => r.Value.Holder is not null).ToDictionary();
            }
        }
    }

    /// <param name="bitmap">The asking node's bitmap id: not 0 when it holds changes its peer lacks.</param>
    public VoteAnswer Request(Guid volume, string node, ulong current, ulong bitmap, ulong writingAs, DateTimeOffset now)
    {
        lock (_lock)
        {
            if (!_records.TryGetValue(volume, out var record))
            {
                return bitmap != 0 && writingAs == current
                    ? Grant(volume, node, writingAs, now, $"no record of the volume; this node already writes alone as data set {current:X16}, so its peer cannot hold newer data")
                    : Refuse(null, 0, "the witness has no record of this volume (a new or lost ledger), so it cannot tell whether the peer wrote newer data; "
                        + "the vote goes to a node that already writes alone, or to either once the pair has been in sync again");
            }

            if (record.Holder == node)
            {
                return Grant(volume, node, writingAs, now, "renewed");
            }

            if (record.Holder is not null && now < record.ExpiresAt)
            {
                return Refuse(record.Holder, record.Generation, $"node {record.Holder} holds the vote until {record.ExpiresAt:HH:mm:ss.fff}");
            }

            if (record.Generation != current)
            {
                var who = record.Holder is null ? "the pair was last in sync at" : $"node {record.Holder} wrote alone as";
                return Refuse(record.Holder, record.Generation, $"{who} data set {record.Generation:X16}; this node holds {current:X16}, which is older");
            }

            return Grant(volume, node, writingAs, now, record.Holder is null
                ? "nobody held the vote and this node holds the volume's newest data set"
                : $"node {record.Holder}'s lease expired and this node holds the same data set");
        }
    }

    /// <summary>
    /// <paramref name="node"/>'s pair is in sync at data set <paramref name="generation"/>: nobody needs the vote,
    /// and the witness records that data set. A release never lowers what another node's vote recorded.
    /// </summary>
    public bool Release(Guid volume, string node, ulong generation, DateTimeOffset now)
    {
        lock (_lock)
        {
            var record = _records.GetValueOrDefault(volume);
            var accepted = record is null
                || record.Holder is null
                || record.Holder == node
                || (now >= record.ExpiresAt && record.Generation == generation);
            if (!accepted || (record is { Holder: null } && record.Generation == generation))
            {
                return false;
            }

            _records[volume] = new VoteRecord(null, generation, now);
            SaveOrUndo(volume, record);
            return record?.Holder is not null;
        }
    }

    private VoteAnswer Grant(Guid volume, string node, ulong generation, DateTimeOffset now, string reason)
    {
        var previous = _records.GetValueOrDefault(volume);
        _records[volume] = new VoteRecord(node, generation, now + Lease);
        if (previous is null || previous.Holder != node || previous.Generation != generation)
        {
            SaveOrUndo(volume, previous);
        }

        return new VoteAnswer(true, node, generation, Lease.TotalSeconds, reason);
    }

    private static VoteAnswer Refuse(string? holder, ulong generation, string reason) => new(false, holder, generation, 0, reason);

    /// <summary>Writes the ledger; when that fails, puts <paramref name="volume"/>'s record back as it was, so nothing unsaved is ever answered.</summary>
    private void SaveOrUndo(Guid volume, VoteRecord? previous)
    {
        try
        {
            _files.WriteAtomically(_path, JsonSerializer.SerializeToUtf8Bytes(_records, NodeConfig.JsonOptions));
        }
        catch
        {
            if (previous is null)
            {
                _records.Remove(volume);
            }
            else
            {
                _records[volume] = previous;
            }

            throw;
        }
    }
}

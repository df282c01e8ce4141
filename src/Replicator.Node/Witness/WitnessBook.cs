using System.Text.Json;
using Replicator.Core.Storage;
using Replicator.Node.Configuration;

namespace Replicator.Node.Witness;

/// <summary>Who holds a volume's vote, as the witness records it.</summary>
/// <param name="Holder">The node allowed to write the volume without its peer.</param>
/// <param name="Generation">The data set (current generation id) the holder writes as: the newest data set of the volume.</param>
/// <param name="ExpiresAt">Until when the holder may write without renewing.</param>
internal sealed record VoteRecord(string Holder, ulong Generation, DateTimeOffset ExpiresAt);

/// <summary>The witness's answer to a vote request.</summary>
internal sealed record VoteAnswer(bool Granted, string Holder, ulong HolderGeneration, double LeaseSeconds, string Reason);

/// <summary>
/// The witness's ledger: per volume, which node may write it alone. Pure rules plus a JSON file.
/// </summary>
/// <remarks>
/// <para>A node asks for the vote when it has lost its peer and wants to acknowledge a write the
/// peer will lack, naming the data set it holds now (<c>current</c>) and the one it will write as
/// (<c>writingAs</c>). The rules that make two writers without contact impossible:</para>
/// <list type="number">
/// <item>No record: granted.</item>
/// <item>The holder asks again: renewed, and its data set updated — so the witness always knows the
/// newest data set before the holder acknowledges anything in it.</item>
/// <item>Another node asks while the holder's lease runs: refused.</item>
/// <item>Another node asks after the lease expired: granted only if it holds the data set the holder
/// last wrote as; a node whose data is older never takes over (it would serve stale data).</item>
/// </list>
/// <para>The holder stops writing before its lease ends at the witness (it counts from when it sent the
/// request), so a takeover never overlaps. After a witness restart every lease counts as just
/// renewed, for the same reason. A holder whose pair is back in sync releases the vote.</para>
/// </remarks>
internal sealed class WitnessBook
{
    private readonly Dictionary<Guid, VoteRecord> _votes = [];
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
                _votes[volume] = record with { ExpiresAt = DateTimeOffset.UtcNow + lease };
            }
        }
    }

    public TimeSpan Lease { get; }

    public IReadOnlyDictionary<Guid, VoteRecord> Votes
    {
        get
        {
            lock (_lock)
            {
                return new Dictionary<Guid, VoteRecord>(_votes);
            }
        }
    }

    public VoteAnswer Request(Guid volume, string node, ulong current, ulong writingAs, DateTimeOffset now)
    {
        lock (_lock)
        {
            if (!_votes.TryGetValue(volume, out var record))
            {
                return Grant(volume, node, writingAs, now, "no node held the vote");
            }

            if (record.Holder == node)
            {
                return Grant(volume, node, writingAs, now, "renewed");
            }

            if (now < record.ExpiresAt)
            {
                return Refuse(record, $"node {record.Holder} holds the vote until {record.ExpiresAt:HH:mm:ss.fff}");
            }

            if (record.Generation != current)
            {
                return Refuse(record, $"node {record.Holder} wrote alone as data set {record.Generation:X16}; this node holds {current:X16}, which is older");
            }

            return Grant(volume, node, writingAs, now, $"node {record.Holder}'s lease expired and this node holds the same data set");
        }
    }

    /// <summary>The holder's pair is back in sync: nobody needs the vote.</summary>
    public bool Release(Guid volume, string node)
    {
        lock (_lock)
        {
            if (_votes.TryGetValue(volume, out var record) && record.Holder == node)
            {
                _votes.Remove(volume);
                SaveOrUndo(volume, record);
                return true;
            }

            return false;
        }
    }

    private VoteAnswer Grant(Guid volume, string node, ulong generation, DateTimeOffset now, string reason)
    {
        var previous = _votes.GetValueOrDefault(volume);
        var record = new VoteRecord(node, generation, now + Lease);
        _votes[volume] = record;
        if (previous is null || previous.Holder != node || previous.Generation != generation)
        {
            SaveOrUndo(volume, previous);
        }

        return new VoteAnswer(true, node, generation, Lease.TotalSeconds, reason);
    }

    private VoteAnswer Refuse(VoteRecord record, string reason) => new(false, record.Holder, record.Generation, 0, reason);

    /// <summary>Writes the ledger; when that fails, puts <paramref name="volume"/>'s record back as it was, so nothing unsaved is ever answered.</summary>
    private void SaveOrUndo(Guid volume, VoteRecord? previous)
    {
        try
        {
            _files.WriteAtomically(_path, JsonSerializer.SerializeToUtf8Bytes(_votes, NodeConfig.JsonOptions));
        }
        catch
        {
            if (previous is null)
            {
                _votes.Remove(volume);
            }
            else
            {
                _votes[volume] = previous;
            }

            throw;
        }
    }
}

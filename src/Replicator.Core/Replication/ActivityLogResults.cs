namespace Replicator.Core.Replication;

internal enum ActivityLogStatus
{
    /// <summary>Every extent of the range is in the log and the log is durable: start the write, no I/O needed.</summary>
    Active,

    /// <summary>
    /// The range's extents are in the log now, but the log on disk is older than
    /// <see cref="ActivityLogBegin.Sequence"/>: persist a snapshot at least that new
    /// (<see cref="ActivityLog.Snapshot"/>, <see cref="ActivityLogFile.Write"/>, <see cref="ActivityLog.MarkDurable"/>)
    /// before starting the write. One write serves every waiter up to its sequence.
    /// </summary>
    MustPersist,

    /// <summary>Every slot holds an extent with writes in flight: nothing changed; retry once <see cref="ActivityLog.End"/> frees one.</summary>
    Full,
}

/// <summary>What <see cref="ActivityLog.Begin"/> decided for one write.</summary>
/// <param name="Sequence">For <see cref="ActivityLogStatus.MustPersist"/>: the log sequence that must be durable before the write starts.</param>
/// <param name="Update">The change this call made to the active set, when it made one; null when it only joined extents already added by an earlier call.</param>
internal readonly record struct ActivityLogBegin(ActivityLogStatus Status, long Sequence, ActivityLogUpdate? Update)
{
    public static ActivityLogBegin Active => new(ActivityLogStatus.Active, 0, null);

    public static ActivityLogBegin Full => new(ActivityLogStatus.Full, 0, null);
}

/// <summary>One change of the active set: the extents that became hot and those evicted to make room.</summary>
internal sealed record ActivityLogUpdate(long Sequence, IReadOnlyList<long> Added, IReadOnlyList<long> Evicted);

/// <summary>The whole active set at one sequence: what <see cref="ActivityLogFile"/> writes and loads.</summary>
internal sealed record ActivityLogSnapshot(long Sequence, IReadOnlyList<long> Extents);

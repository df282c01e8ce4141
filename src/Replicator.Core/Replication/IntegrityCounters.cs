namespace Replicator.Core.Replication;

/// <summary>Where a block was found failing its checksum.</summary>
internal enum IntegrityPath
{
    /// <summary>A client's read.</summary>
    Read,

    /// <summary>A write of part of a block, which reads the block first.</summary>
    Write,

    /// <summary>The resync source reading what it sends.</summary>
    Resync,

    /// <summary>A read served for the peer (a block it repairs, a region it lacks).</summary>
    PeerRead,

    /// <summary>Region checksums of a verify or a checksum resync.</summary>
    Compare,

    /// <summary>The background scrub.</summary>
    Scrub,
}

/// <summary>The last block found damaged: when, where, on which replica, on what path, and what became of it.</summary>
internal sealed record IntegrityEvent(DateTimeOffset At, long Offset, string Replica, IntegrityPath Path, string Outcome);

/// <summary>A volume's block integrity since the node started: what status, the API, the metrics and the page show.</summary>
/// <param name="Detected">Blocks found failing their checksum (on this replica, or reported by the peer for its own).</param>
/// <param name="Healed">Damaged blocks rewritten with the other replica's verified copy.</param>
/// <param name="Unrecoverable">Damaged blocks with no good copy on either replica: they read as I/O errors.</param>
/// <param name="Unverified">Blocks the check after a crash could not vouch for (a write that was not durable).</param>
/// <param name="Settled">Unverified blocks later accepted as they were, or replaced by the peer's copy.</param>
internal readonly record struct IntegritySnapshot(long Detected, long Healed, long Unrecoverable, long Unverified, long Settled, IntegrityEvent? Last);

/// <summary>
/// Counts of one volume's damaged blocks. A block already counted and not repaired since is not counted
/// again (a client retrying a read that fails does not inflate them); the set that remembers them is
/// bounded and forgets everything when full.
/// </summary>
internal sealed class IntegrityCounters
{
    private const int Remembered = 4096;

    private readonly Lock _lock = new();
    private readonly HashSet<(string Replica, long Offset)> _known = [];
    private long _detected;
    private long _healed;
    private long _unrecoverable;
    private long _unverified;
    private long _settled;
    private IntegrityEvent? _last;

    public IntegritySnapshot Snapshot
    {
        get
        {
            lock (_lock)
            {
                return new IntegritySnapshot(_detected, _healed, _unrecoverable, _unverified, _settled, _last);
            }
        }
    }

    /// <summary>A block found failing its checksum; false when it was counted already (and not repaired since).</summary>
    public bool Detected(long offset, string replica, IntegrityPath path)
    {
        lock (_lock)
        {
            if (_known.Count >= Remembered)
            {
                _known.Clear();
            }

            if (!_known.Add((replica, offset)))
            {
                return false;
            }

            _detected++;
            _last = new IntegrityEvent(DateTimeOffset.UtcNow, offset, replica, path, "detected");
            return true;
        }
    }

    public void Healed(long offset, string replica, IntegrityPath path)
    {
        lock (_lock)
        {
            _known.Remove((replica, offset));
            _healed++;
            _last = new IntegrityEvent(DateTimeOffset.UtcNow, offset, replica, path, "healed");
        }
    }

    /// <summary>A damaged block that nothing could repair; counted once while it stays so.</summary>
    public void Unrecoverable(long offset, string replica, IntegrityPath path, bool firstTime)
    {
        lock (_lock)
        {
            if (firstTime)
            {
                _unrecoverable++;
            }

            _last = new IntegrityEvent(DateTimeOffset.UtcNow, offset, replica, path, "unrecoverable");
        }
    }

    public void MarkedUnverified(long blocks)
    {
        lock (_lock)
        {
            _unverified += blocks;
        }
    }

    public void Settled(long offset, string replica, IntegrityPath path)
    {
        lock (_lock)
        {
            _settled++;
            _last = new IntegrityEvent(DateTimeOffset.UtcNow, offset, replica, path, "unverified block settled");
        }
    }
}

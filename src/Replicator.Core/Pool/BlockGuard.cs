namespace Replicator.Core.Pool;

/// <summary>
/// Orders the pool's block I/O where a checksum makes it necessary, with striped reader-writer locks
/// keyed by pool block.
/// </summary>
/// <remarks>
/// <para><b>Shared</b>: a write of whole blocks, which stores data then checksums. Writes to the same
/// block never run at once here (the volume's owner orders overlapping writes, and the peer applies
/// them in that order), so they only have to keep out the exclusive holders.</para>
/// <para><b>Exclusive</b>, one block at a time: a read that found a block failing its checksum and
/// confirms it (a read racing a write may see new data with the old checksum; under the lock it sees
/// both of one write, so a mismatch found there is real); a write of part of a block (read, verify,
/// merge, write block and checksum: two such writes to different bytes of one block must not lose
/// each other's bytes); the repair of a block from the peer's copy; settling a block after a crash.</para>
/// <para>Reads that find every block intact take no lock at all. The locks are held only across
/// synchronous pread/pwrite calls, never across an await, so the thread-affine
/// <see cref="ReaderWriterLockSlim"/> fits. A writer takes its stripes in ascending order and an
/// exclusive holder takes only one, so no two holders can wait on each other.</para>
/// </remarks>
internal sealed class BlockGuard : IDisposable
{
    public const int Stripes = 1024;

    private readonly ReaderWriterLockSlim[] _stripes = new ReaderWriterLockSlim[Stripes];

    public BlockGuard()
    {
        for (var i = 0; i < Stripes; i++)
        {
            _stripes[i] = new ReaderWriterLockSlim(LockRecursionPolicy.NoRecursion);
        }
    }

    /// <summary>Holds the stripes of <paramref name="count"/> blocks from pool block <paramref name="first"/> shared until disposed.</summary>
    public Shared EnterShared(long first, long count)
    {
        var (start, end) = StripeRange(first, count);
        if (end <= Stripes)
        {
            for (var i = start; i < end; i++)
            {
                _stripes[i].EnterReadLock();
            }
        }
        else
        {
            // The blocks wrap around the stripes: take [0, end - Stripes) then [start, Stripes), in ascending order.
            for (var i = 0; i < end - Stripes; i++)
            {
                _stripes[i].EnterReadLock();
            }

            for (var i = start; i < Stripes; i++)
            {
                _stripes[i].EnterReadLock();
            }
        }

        return new Shared(this, start, end);
    }

    /// <summary>Holds one pool block's stripe exclusively until disposed.</summary>
    public Exclusive EnterExclusive(long block)
    {
        var stripe = _stripes[(int)(block % Stripes)];
        stripe.EnterWriteLock();
        return new Exclusive(stripe);
    }

    public void Dispose()
    {
        foreach (var stripe in _stripes)
        {
            stripe.Dispose();
        }
    }

    /// <summary>The stripes as [start, end), end past <see cref="Stripes"/> when they wrap; all of them for long runs.</summary>
    private static (int Start, int End) StripeRange(long first, long count)
    {
        if (count >= Stripes)
        {
            return (0, Stripes);
        }

        var start = (int)(first % Stripes);
        return (start, start + (int)count);
    }

    private void ExitShared(int start, int end)
    {
        for (var i = start; i < Math.Min(end, Stripes); i++)
        {
            _stripes[i].ExitReadLock();
        }

        for (var i = 0; i < end - Stripes; i++)
        {
            _stripes[i].ExitReadLock();
        }
    }

    public readonly struct Shared(BlockGuard guard, int start, int end) : IDisposable
    {
        public void Dispose() => guard?.ExitShared(start, end);
    }

    public readonly struct Exclusive(ReaderWriterLockSlim stripe) : IDisposable
    {
        public void Dispose() => stripe?.ExitWriteLock();
    }
}

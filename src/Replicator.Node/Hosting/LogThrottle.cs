namespace Replicator.Node.Hosting;

/// <summary>
/// Lets at most <c>limit</c> log lines of one kind through per <c>window</c>, and says how many it held
/// back: a stranger flooding a port must not flood the log (or the disk under it) as well.
/// </summary>
internal sealed class LogThrottle(int limit, TimeSpan window)
{
    private readonly Lock _lock = new();
    private DateTime _windowStart = DateTime.MinValue;
    private int _inWindow;
    private int _suppressed;

    /// <summary>Whether to log this line; <paramref name="suppressed"/> is how many were held back since the last one logged.</summary>
    public bool TryEnter(out int suppressed)
    {
        lock (_lock)
        {
            var now = DateTime.UtcNow;
            if (now - _windowStart >= window)
            {
                _windowStart = now;
                _inWindow = 0;
            }

            if (_inWindow < limit)
            {
                _inWindow++;
                suppressed = _suppressed;
                _suppressed = 0;
                return true;
            }

            _suppressed++;
            suppressed = 0;
            return false;
        }
    }
}

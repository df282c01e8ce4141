namespace Replicator.Node.Replication;

/// <summary>
/// What the node refused on its peer port and its peer link, and how the link up now is protected:
/// the admin API, <c>status</c> and the metrics read it. Thread-safe.
/// </summary>
internal sealed class PeerSecurityStatus
{
    private readonly Lock _lock = new();
    private long _refusedConnections;
    private long _refusedRequests;

    /// <summary>Connections that did not authenticate (or were turned away for too many handshakes at once) since this node started.</summary>
    public long RefusedConnections => Interlocked.Read(ref _refusedConnections);

    /// <summary>Requests of the authenticated peer refused because they did not fit the pairing, since this node started.</summary>
    public long RefusedRequests => Interlocked.Read(ref _refusedRequests);

    /// <summary>The last connection refused, when and why.</summary>
    public Refusal? LastRefusedConnection { get; private set; }

    /// <summary>The last request refused, when and why.</summary>
    public Refusal? LastRefusedRequest { get; private set; }

    /// <summary>How the link up now is protected; null while there is none.</summary>
    public LinkProtection? Link { get; private set; }

    public void ConnectionRefused(string reason)
    {
        Interlocked.Increment(ref _refusedConnections);
        lock (_lock)
        {
            LastRefusedConnection = new Refusal(DateTimeOffset.UtcNow, reason);
        }
    }

    public void RequestRefused(string reason)
    {
        Interlocked.Increment(ref _refusedRequests);
        lock (_lock)
        {
            LastRefusedRequest = new Refusal(DateTimeOffset.UtcNow, reason);
        }
    }

    public void LinkUp(LinkProtection protection)
    {
        lock (_lock)
        {
            Link = protection;
        }
    }

    /// <summary>The link <paramref name="protection"/> described ended (a newer one may be up already).</summary>
    public void LinkDown(LinkProtection protection)
    {
        lock (_lock)
        {
            if (Link == protection)
            {
                Link = null;
            }
        }
    }

    internal sealed record Refusal(DateTimeOffset At, string Reason);
}

/// <summary>How the peer link up now is protected: whether it is encrypted, and the certificate the peer proved itself with.</summary>
internal sealed record LinkProtection(bool Encrypted, string PeerCertificateSerial, Guid PeerId);

namespace Replicator.Protocol.Peer;

/// <summary>The largest header and payload a peer frame may carry; anything larger is refused before it is buffered.</summary>
internal readonly record struct PeerFrameLimits(int MaxHeaderLength, int MaxPayloadLength)
{
    public static PeerFrameLimits Default { get; } = new(PeerWire.DefaultMaxHeaderLength, PeerWire.DefaultMaxPayloadLength);

    /// <summary>Throws when a limit is not positive.</summary>
    public void Validate()
    {
        if (MaxHeaderLength <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxHeaderLength), MaxHeaderLength, "The largest peer frame header must be a positive number of bytes.");
        }

        if (MaxPayloadLength <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxPayloadLength), MaxPayloadLength, "The largest peer frame payload must be a positive number of bytes.");
        }
    }
}

namespace Replicator.Protocol.Peer;

/// <summary>
/// Every constant of the peer protocol's framing and versioning, in one place. The frame
/// layout they describe is drawn in <see cref="PeerFrameReader"/>; the message headers are
/// in <c>proto/peer.proto</c>.
/// </summary>
internal static class PeerWire
{
    /// <summary>
    /// Major version of the peer protocol this build speaks. Nodes of different major versions
    /// refuse each other; bump it when a peer of the previous version could misread a message.
    /// </summary>
    /// <remarks>
    /// 3 came twice, from two lines of work merged later: block checksums travelling with block data
    /// (Envelope.block_checksum_size, region checksums with a status) on one, the mutual TLS session before
    /// the first frame on the other. 4 is both: a node of either 3 cannot talk to a node of 4.
    /// </remarks>
    public const uint ProtocolMajor = 4;

    /// <summary>Minor version: compatible additions (new messages, new fields).</summary>
    public const uint ProtocolMinor = 0;

    /// <summary>"RPLP" (Replicator peer), the first four bytes of every frame.</summary>
    public const uint FrameMagic = 0x52504C50;

    /// <summary>Length of the fixed part of a frame: magic, header length, payload length, header CRC.</summary>
    public const int PrefixLength = 16;

    public const int MagicOffset = 0;
    public const int HeaderLengthOffset = 4;
    public const int PayloadLengthOffset = 8;
    public const int HeaderCrcOffset = 12;

    /// <summary>The header CRC covers the prefix up to (not including) the CRC itself, then the header.</summary>
    public const int CrcCoveredPrefixLength = HeaderCrcOffset;

    /// <summary>Largest header accepted by default: a Hello with a few hundred volumes fits.</summary>
    public const int DefaultMaxHeaderLength = 64 * 1024;

    /// <summary>Largest payload accepted by default: the largest NBD request (32 MiB) and its block checksums fit in one frame.</summary>
    public const int DefaultMaxPayloadLength = (32 * 1024 * 1024) + (32 * 1024 * 1024 / BlockChecksumSize * 8);

    /// <summary>The only block size block checksums are carried for (<c>Envelope.block_checksum_size</c>).</summary>
    public const int BlockChecksumSize = 4096;
}

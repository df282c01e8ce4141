using System.IO.Hashing;

namespace Replicator.Core.Hashing;

/// <summary>
/// The hash of block contents wherever the replicas compare or carry data: the peer link's payload
/// checksum, region checksums for resync and verify. XXH3-64 from System.IO.Hashing (vectorized):
/// on 4 KiB blocks it runs at several times the speed of the XXH64 it replaced. Not cryptographic:
/// it catches corruption, not forgery (the link's authentication does that).
/// </summary>
internal static class ContentHash
{
    public static ulong Of(ReadOnlySpan<byte> data) => XxHash3.HashToUInt64(data);
}

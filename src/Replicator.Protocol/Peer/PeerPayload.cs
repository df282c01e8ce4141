using System.Buffers;

namespace Replicator.Protocol.Peer;

/// <summary>
/// A frame payload in a buffer rented from <see cref="ArrayPool{T}.Shared"/>, exactly
/// <see cref="Length"/> bytes long. Whoever holds it disposes it, which returns the buffer.
/// </summary>
internal sealed class PeerPayload : IMemoryOwner<byte>
{
    private byte[]? _buffer;

    private PeerPayload(byte[] buffer, int length)
    {
        _buffer = buffer;
        Length = length;
    }

    public int Length { get; }

    public Memory<byte> Memory => _buffer is { } buffer
        ? buffer.AsMemory(0, Length)
        : throw new ObjectDisposedException(nameof(PeerPayload));

    /// <summary>Bytes of block data; the rest of the payload, if any, is their block checksums (set once they are checked).</summary>
    public int DataLength { get; set; } = -1;

    /// <summary>The block data: the whole payload unless it carries block checksums.</summary>
    public Memory<byte> Data => DataLength < 0 ? Memory : Memory[..DataLength];

    /// <summary>The block checksums after the data (8 bytes per 4 KiB block), or empty.</summary>
    public Memory<byte> BlockChecksums => DataLength < 0 ? Memory<byte>.Empty : Memory[DataLength..];

    /// <summary>Copies <paramref name="source"/> into a pooled buffer.</summary>
    public static PeerPayload CopyFrom(in ReadOnlySequence<byte> source)
    {
        var length = checked((int)source.Length);
        var payload = new PeerPayload(ArrayPool<byte>.Shared.Rent(length), length);
        source.CopyTo(payload._buffer);
        return payload;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _buffer, null) is { } buffer)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}

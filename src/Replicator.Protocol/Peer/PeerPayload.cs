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

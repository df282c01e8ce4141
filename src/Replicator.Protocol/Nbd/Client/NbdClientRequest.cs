using System.Diagnostics;
using System.Threading.Tasks.Sources;
using Replicator.Core.Devices;

namespace Replicator.Protocol.Nbd.Client;

/// <summary>
/// One request slot of a connection, reused by every request that takes the slot, so a request allocates
/// nothing. A request completes once it has been written into the transport and its last reply has been read
/// (by the receiver), in either order: a server may answer a refused WRITE before its payload is all sent,
/// and the caller's buffer must not be let go while the writer still reads it. The slot returns to the
/// connection when the caller has taken the result.
/// </summary>
internal sealed class NbdClientRequest : IValueTaskSource
{
    private readonly NbdClient _owner;
    private ManualResetValueTaskSourceCore<bool> _core;
    private int _pendingParts;
    private uint _generation;

    public NbdClientRequest(NbdClient owner, int slot)
    {
        _owner = owner;
        Slot = slot;
    }

    public int Slot { get; }

    /// <summary>The handle on the wire: this use of the slot in the high 32 bits, the slot in the low 32.</summary>
    public ulong Cookie { get; private set; }

    public ushort Type { get; private set; }

    public ushort Flags { get; private set; }

    public ulong Offset { get; private set; }

    public uint Length { get; private set; }

    /// <summary>Where a READ's data goes.</summary>
    public Memory<byte> Destination { get; private set; }

    /// <summary>A WRITE's data.</summary>
    public ReadOnlyMemory<byte> Payload { get; private set; }

    /// <summary>Where a BLOCK_STATUS's extents go.</summary>
    public List<AllocationExtent>? Extents { get; private set; }

    /// <summary><see cref="Stopwatch"/> timestamp of when the request was started.</summary>
    public long Started { get; private set; }

    /// <summary>Between <see cref="Begin"/> and completion; guarded by the connection's slot lock.</summary>
    public bool InFlight { get; set; }

    /// <summary>The first error a reply carried (receiver only), and its message.</summary>
    public uint Error { get; set; }

    public string? ErrorMessage { get; set; }

    /// <summary>Bytes of a READ (or of a BLOCK_STATUS range) the replies have covered so far (receiver only).</summary>
    public long Covered { get; set; }

    public void Begin(ushort type, ushort flags, ulong offset, uint length, Memory<byte> destination, ReadOnlyMemory<byte> payload, List<AllocationExtent>? extents)
    {
        _core.Reset();
        Cookie = ((ulong)++_generation << 32) | (uint)Slot;
        Type = type;
        Flags = flags;
        Offset = offset;
        Length = length;
        Destination = destination;
        Payload = payload;
        Extents = extents;
        Error = 0;
        ErrorMessage = null;
        Covered = 0;
        _pendingParts = 2;
        Started = Stopwatch.GetTimestamp();
    }

    public ValueTask AsValueTask() => new(this, _core.Version);

    /// <summary>The request is on the wire, or its last reply was read; the second of the two completes it.</summary>
    public void PartDone()
    {
        if (Interlocked.Decrement(ref _pendingParts) == 0)
        {
            _owner.Complete(this);
        }
    }

    public void SetResult() => _core.SetResult(true);

    public void SetException(Exception exception) => _core.SetException(exception);

    /// <summary>Drops the references to the caller's buffers before the slot is used again.</summary>
    public void Clear()
    {
        Destination = default;
        Payload = default;
        Extents = null;
        ErrorMessage = null;
    }

    public void GetResult(short token)
    {
        try
        {
            _core.GetResult(token);
        }
        finally
        {
            _owner.Release(this);
        }
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}

using Replicator.Core.Devices;

namespace Replicator.Protocol.Tests.Nbd.Support;

/// <summary>
/// A byte-array disk for tests, thin-provisioned in units of <see cref="AllocationUnit"/> bytes so block
/// status and holes can be checked. Every call can be held back (<see cref="Gate"/>) or failed
/// (<see cref="Fault"/>), and the calls made are recorded.
/// </summary>
internal sealed class MemoryBlockDevice : IBlockDevice
{
    public const int AllocationUnit = 4096;

    private readonly Lock _lock = new();
    private readonly byte[] _data;
    private readonly bool[] _allocated;
    private int _running;

    public MemoryBlockDevice(int size, DeviceFeatures features = DeviceFeatures.AllWritable)
    {
        _data = new byte[size];
        _allocated = new bool[(size + AllocationUnit - 1) / AllocationUnit];
        Features = features;
    }

    public long Size => _data.Length;

    public DeviceFeatures Features { get; set; }

    /// <summary>Awaited at the start of every call with the operation name and offset; lets a test hold calls back.</summary>
    public Func<string, long, CancellationToken, Task>? Gate { get; set; }

    /// <summary>Returns an exception to throw for an operation at an offset, or null to run it.</summary>
    public Func<string, long, Exception?>? Fault { get; set; }

    public List<string> Calls { get; } = [];

    public int MaxConcurrentCalls { get; private set; }

    public byte[] Snapshot()
    {
        lock (_lock)
        {
            return (byte[])_data.Clone();
        }
    }

    public bool IsAllocated(long offset)
    {
        lock (_lock)
        {
            return _allocated[offset / AllocationUnit];
        }
    }

    public async ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        await EnterAsync("read", offset, destination.Length, cancellationToken);
        try
        {
            lock (_lock)
            {
                _data.AsSpan((int)offset, destination.Length).CopyTo(destination.Span);
            }
        }
        finally
        {
            Exit();
        }
    }

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, IoFlags flags, CancellationToken cancellationToken = default)
    {
        await EnterAsync(flags.HasFlag(IoFlags.Fua) ? "write+fua" : "write", offset, source.Length, cancellationToken);
        try
        {
            lock (_lock)
            {
                source.Span.CopyTo(_data.AsSpan((int)offset));
                MarkAllocated(offset, source.Length);
            }
        }
        finally
        {
            Exit();
        }
    }

    public async ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        await EnterAsync("flush", 0, 0, cancellationToken);
        Exit();
    }

    public async ValueTask TrimAsync(long offset, long length, IoFlags flags, CancellationToken cancellationToken = default)
    {
        await EnterAsync(flags.HasFlag(IoFlags.Fua) ? "trim+fua" : "trim", offset, length, cancellationToken);
        try
        {
            lock (_lock)
            {
                _data.AsSpan((int)offset, (int)length).Clear();
                FreeWholeUnits(offset, length);
            }
        }
        finally
        {
            Exit();
        }
    }

    public async ValueTask WriteZeroesAsync(long offset, long length, IoFlags flags, CancellationToken cancellationToken = default)
    {
        var noHole = flags.HasFlag(IoFlags.NoHole);
        await EnterAsync(noHole ? "zero+nohole" : "zero", offset, length, cancellationToken);
        try
        {
            lock (_lock)
            {
                _data.AsSpan((int)offset, (int)length).Clear();
                if (noHole)
                {
                    MarkAllocated(offset, length);
                }
                else
                {
                    FreeWholeUnits(offset, length);
                }
            }
        }
        finally
        {
            Exit();
        }
    }

    public async ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        await EnterAsync("cache", offset, length, cancellationToken);
        Exit();
    }

    public async ValueTask<IReadOnlyList<AllocationExtent>> GetAllocationAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        await EnterAsync("status", offset, length, cancellationToken);
        try
        {
            lock (_lock)
            {
                var extents = new List<AllocationExtent>();
                var end = offset + length;
                var position = offset;
                while (position < end)
                {
                    var unit = position / AllocationUnit;
                    var state = _allocated[unit] ? AllocationState.Data : AllocationState.Hole | AllocationState.Zero;
                    var extentEnd = Math.Min((unit + 1) * AllocationUnit, end);
                    if (extents.Count > 0 && extents[^1].State == state)
                    {
                        extents[^1] = extents[^1] with { Length = extents[^1].Length + (extentEnd - position) };
                    }
                    else
                    {
                        extents.Add(new AllocationExtent(extentEnd - position, state));
                    }

                    position = extentEnd;
                }

                return extents;
            }
        }
        finally
        {
            Exit();
        }
    }

    private async Task EnterAsync(string operation, long offset, long length, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            Calls.Add($"{operation} {offset} {length}");
            _running++;
            MaxConcurrentCalls = Math.Max(MaxConcurrentCalls, _running);
        }

        try
        {
            if (Gate is { } gate)
            {
                await gate(operation, offset, cancellationToken);
            }

            if (Fault?.Invoke(operation, offset) is { } exception)
            {
                throw exception;
            }

            if (offset < 0 || length < 0 || offset + length > Size)
            {
                throw new BlockDeviceException(StorageError.OutOfRange, $"{operation} at {offset} of {length} bytes is beyond {Size}");
            }
        }
        catch
        {
            Exit();
            throw;
        }
    }

    private void Exit()
    {
        lock (_lock)
        {
            _running--;
        }
    }

    private void MarkAllocated(long offset, long length)
    {
        if (length == 0)
        {
            return;
        }

        for (var unit = offset / AllocationUnit; unit <= (offset + length - 1) / AllocationUnit; unit++)
        {
            _allocated[unit] = true;
        }
    }

    private void FreeWholeUnits(long offset, long length)
    {
        var first = (offset + AllocationUnit - 1) / AllocationUnit;
        var end = (offset + length) / AllocationUnit;
        if (offset + length == Size)
        {
            end = _allocated.Length;
        }

        for (var unit = first; unit < end; unit++)
        {
            _allocated[unit] = false;
        }
    }
}

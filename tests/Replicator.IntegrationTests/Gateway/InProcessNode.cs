using System.Diagnostics.CodeAnalysis;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Replicator.Core.Devices;
using Replicator.Node.Gateway;
using Replicator.Protocol.Nbd;
using Replicator.Protocol.Nbd.Client;

namespace Replicator.IntegrationTests.Gateway;

/// <summary>
/// A stand-in for one storage node in the gateway's routing tests: this project's NBD server on a real Unix
/// socket, exporting one in-memory volume whose calls can be held back or failed on cue (the errors a real node
/// gives only in states that cannot be produced from outside on demand: EIO from its disk, EPERM without quorum).
/// </summary>
internal sealed class InProcessNode : IAsyncDisposable
{
    public const string Volume = "vol";
    public const int Size = 8 << 20;

    private readonly NbdServer _server;

    public InProcessNode(string name, string directory)
    {
        Name = name;
        var socket = Path.Combine(directory, name + ".sock");
        _server = new NbdServer(new SingleVolumeCatalog(Volume, Device), NullLoggerFactory.Instance, new NbdServerOptions { ShutdownTimeout = TimeSpan.FromMilliseconds(100) });
        _server.Start([new UnixDomainSocketEndPoint(socket)]);
        Node = new GatewayNode(name, new NbdUri(new UnixDomainSocketEndPoint(socket), ""), new Uri("http://127.0.0.1:1"));
    }

    public string Name { get; }

    public GatewayNode Node { get; }

    public ScriptedDevice Device { get; } = new(Size);

    /// <summary>NBD connections open to this node now.</summary>
    public int Connections => _server.ConnectionCount;

    /// <summary>What this node's admin API would report about the volume.</summary>
    public static NodeVolumeView View(string preferred, bool inSync = true) =>
        new(preferred, inSync ? "connected" : "disconnected", inSync ? "up-to-date" : "outdated", inSync ? 0 : 4096, Size);

    /// <summary>Stops the NBD server: every connection to it ends, as when the node dies.</summary>
    public Task StopAsync() => _server.StopAsync();

    public async ValueTask DisposeAsync() => await _server.DisposeAsync();
}

/// <summary>An NBD catalog of one export on one device, which any number of connections may attach to.</summary>
internal sealed class SingleVolumeCatalog(string volume, IBlockDevice device) : INbdExportCatalog
{
    public IReadOnlyList<NbdExportInfo> ListExports() => [new NbdExportInfo(volume, "")];

    public bool TryAttach(string name, [NotNullWhen(true)] out IExportAttachment? attachment, out AttachRefusal refusal, out string? message)
    {
        attachment = name == volume ? new Attachment(device) : null;
        refusal = attachment is null ? AttachRefusal.UnknownExport : AttachRefusal.None;
        message = null;
        return attachment is not null;
    }

    private sealed class Attachment(IBlockDevice device) : IExportAttachment
    {
        public IBlockDevice Device { get; } = device;

        public void Dispose()
        {
        }
    }
}

/// <summary>An in-memory disk whose calls a test can fail (<see cref="Fault"/>) or hold back (<see cref="Gate"/>).</summary>
internal sealed class ScriptedDevice(int size) : IBlockDevice
{
    private readonly byte[] _data = new byte[size];
    private int _calls;

    public long Size => _data.Length;

    public DeviceFeatures Features => DeviceFeatures.AllWritable & ~DeviceFeatures.BlockStatus;

    /// <summary>Returns the error for an operation ("read", "write", "flush") at an offset, or null to serve it.</summary>
    public Func<string, long, BlockDeviceException?>? Fault { get; set; }

    /// <summary>Awaited before every call; a test holds calls back with it.</summary>
    public Func<CancellationToken, Task>? Gate { get; set; }

    public int Calls => Volatile.Read(ref _calls);

    public byte[] Read(long offset, int length)
    {
        lock (_data)
        {
            return _data.AsSpan((int)offset, length).ToArray();
        }
    }

    public async ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        await EnterAsync("read", offset, cancellationToken);
        lock (_data)
        {
            _data.AsSpan((int)offset, destination.Length).CopyTo(destination.Span);
        }
    }

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, IoFlags flags, CancellationToken cancellationToken = default)
    {
        await EnterAsync("write", offset, cancellationToken);
        lock (_data)
        {
            source.Span.CopyTo(_data.AsSpan((int)offset));
        }
    }

    public async ValueTask FlushAsync(CancellationToken cancellationToken = default) => await EnterAsync("flush", 0, cancellationToken);

    public async ValueTask TrimAsync(long offset, long length, IoFlags flags, CancellationToken cancellationToken = default) =>
        await WriteZeroesAsync(offset, length, flags, cancellationToken);

    public async ValueTask WriteZeroesAsync(long offset, long length, IoFlags flags, CancellationToken cancellationToken = default)
    {
        await EnterAsync("write", offset, cancellationToken);
        lock (_data)
        {
            _data.AsSpan((int)offset, (int)length).Clear();
        }
    }

    public async ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken = default) =>
        await EnterAsync("cache", offset, cancellationToken);

    public ValueTask<IReadOnlyList<AllocationExtent>> GetAllocationAsync(long offset, long length, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult<IReadOnlyList<AllocationExtent>>([new AllocationExtent(length, AllocationState.Data)]);

    private async ValueTask EnterAsync(string operation, long offset, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _calls);
        if (Gate is { } gate)
        {
            await gate(cancellationToken);
        }

        if (Fault?.Invoke(operation, offset) is { } fault)
        {
            throw fault;
        }
    }
}

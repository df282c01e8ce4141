namespace Replicator.Node.Admin;

/// <summary>The JSON shapes of the admin API (camelCase on the wire). The CLI reads the same types.</summary>
internal sealed record NodeInfo(string Name, Guid NodeId, Guid ClusterId, string Version, int Pid, string NbdTcp, string NbdSocket);

internal sealed record PoolInfo(long CapacityBytes, long VirtualBytes, long AllocatedBytes, long FreeBytes, int Volumes, int ExtentSize);

internal sealed record VolumeInfo(string Name, Guid Id, long SizeBytes, long AllocatedBytes, int AllocationUnit, int AttachedClients);

internal sealed record CreateVolumeRequest(string? Name, string? Size);

internal sealed record ResizeVolumeRequest(string? Size);

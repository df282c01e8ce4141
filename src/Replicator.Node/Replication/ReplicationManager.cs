using System.Diagnostics.CodeAnalysis;
using Replicator.Core.Pool;
using Replicator.Core.Replication;
using Replicator.Core.Storage;
using Replicator.Core.Volumes;
using Replicator.Node.Configuration;
using Replicator.Protocol.Peer;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Node.Replication;

/// <summary>
/// The node's replicated volumes and their pairing with the peer: one <see cref="ReplicatedVolume"/>
/// per pool volume, each paired for the life of every peer connection. Serves the peer's requests
/// (<see cref="IPeerRequestHandler"/>) and the admin side's volume operations, which it carries to the peer.
/// </summary>
internal sealed partial class ReplicationManager : IPeerRequestHandler, IDisposable
{
    public const string ReplicasDirectoryName = "replicas";

    private readonly Lock _lock = new();
    private readonly Dictionary<Guid, ReplicatedVolume> _volumes = [];
    private readonly Dictionary<Guid, VolumeSettings> _settings = [];
    private readonly IFileSystem _files;
    private readonly string _replicasDirectory;
    private readonly NodeConfig _config;
    private readonly StoragePool _pool;
    private readonly IWriteQuorum _quorum;
    private readonly Tombstones _tombstones;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly PeerReadLease? _promisedBeforeStart;
    private PeerLinkState? _link;

    public ReplicationManager(IFileSystem files, string nodeDirectory, NodeConfig config, StoragePool pool, IWriteQuorum quorum, ILoggerFactory loggerFactory)
    {
        _files = files;
        _config = config;
        _pool = pool;
        _quorum = quorum;
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger<ReplicationManager>();
        _replicasDirectory = Path.Combine(nodeDirectory, ReplicasDirectoryName);
        files.CreateDirectory(_replicasDirectory);
        _tombstones = new Tombstones(files, _replicasDirectory);
        _promisedBeforeStart = config.Peer is { } peer ? PeerReadLease.PromisedBeforeThisProcess(peer.ConnectionOptions.KeepaliveTimeout) : null;
        foreach (var volume in pool.Volumes)
        {
            Register(volume, ReplicaOrigin.CreatedHere);
        }
    }

    public string LocalName => _config.Name;

    public string? PeerName => _config.Peer?.Name;

    public IWriteQuorum Quorum => _quorum;

    public IReadOnlyList<ReplicatedVolume> Volumes
    {
        get
        {
            lock (_lock)
            {
                return _volumes.Values.OrderBy(v => v.Name, StringComparer.Ordinal).ToList();
            }
        }
    }

    /// <summary>The peer connection's state, for status output.</summary>
    public PeerLinkState? Link => Volatile.Read(ref _link);

    public ReplicatedVolume? Find(string name)
    {
        lock (_lock)
        {
            return _volumes.Values.FirstOrDefault(v => v.Name == name);
        }
    }

    public bool TryFind(Guid id, [NotNullWhen(true)] out ReplicatedVolume? volume)
    {
        lock (_lock)
        {
            return _volumes.TryGetValue(id, out volume);
        }
    }

    public string PreferredNode(ReplicatedVolume volume)
    {
        lock (_lock)
        {
            return _settings[volume.Id].Preferred(volume.Id, LocalName, PeerName);
        }
    }

    /// <summary>What the handshake tells the peer about this node's volumes.</summary>
    public Hello CreateHello()
    {
        var volumes = Volumes.Select(v =>
        {
            var status = v.Replica.Status;
            return new VolumeDescriptor
            {
                VolumeId = v.Id.ToString(),
                Name = v.Name,
                Size = (ulong)v.Size,
                AllocationUnit = (uint)v.Local.UnitSize,
                Generation = PeerMessages.ToProto(status.Ids),
                DiskState = PeerMessages.ToProto(status.Disk),
            };
        });
        var hello = PeerHandshake.CreateHello(new PeerIdentity(_config.ClusterId, _config.NodeId, _config.Name), volumes);
        hello.ReceiveWindow = (ulong)(_config.Peer?.ReceiveWindowBytes ?? PeerConnectionOptions.DefaultReceiveWindow);
        return hello;
    }

    public void Dispose()
    {
        foreach (var volume in Volumes)
        {
            volume.Dispose();
        }
    }

    /// <summary>How a volume's replica came to be on this node, which decides its first generation.</summary>
    private enum ReplicaOrigin
    {
        /// <summary>Created on this node (or together with the peer): the fresh all-zero data set, up to date.</summary>
        CreatedHere,

        /// <summary>Created because the peer has it: no meaningful data until a full sync.</summary>
        CopiedFromPeer,
    }

    private ReplicatedVolume Register(ThinVolume local, ReplicaOrigin origin)
    {
        var directory = ReplicaDirectory(local.Id);
        var logger = _loggerFactory.CreateLogger<ReplicatedVolume>();
        var store = ReplicaStore.Exists(_files, directory)
            ? ReplicaStore.Open(_files, directory, local.Size, logger)
            : origin == ReplicaOrigin.CreatedHere
                ? ReplicaStore.Create(_files, directory, local.Id, local.Size, Core.Replication.GenerationIds.NewVolume, ReplicaDiskState.UpToDate, ReplicaFlags.None, logger)
                : ReplicaStore.Create(_files, directory, local.Id, local.Size, Core.Replication.GenerationIds.EmptyReplica, ReplicaDiskState.Inconsistent, ReplicaFlags.None, logger);
        var volume = new ReplicatedVolume(local, store, _quorum, PeerName, logger, _promisedBeforeStart) { LocalName = LocalName, RepairRequested = OnRepairRequested };
        if (store.Crashed)
        {
            volume.RecheckAfterCrash();
        }

        if (local.BlockChecksums)
        {
            volume.Scrub.Interval = _config.Scrub.Interval;
            volume.Scrub.RateLimit = _config.Scrub.RateLimitBytes;
            volume.Scrub.Start();
        }

        lock (_lock)
        {
            _volumes[local.Id] = volume;
            _settings[local.Id] = VolumeSettings.Load(_files, directory);
        }

        return volume;
    }

    private string ReplicaDirectory(Guid id) => Path.Combine(_replicasDirectory, id.ToString());
}

/// <summary>The current peer connection, as status output shows it.</summary>
internal sealed record PeerLinkState(string PeerName, Guid PeerNodeId, DateTimeOffset Since, string Address, PeerReadLease ReadLease, TimeSpan ReadLeaseAsked);

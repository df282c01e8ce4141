using Replicator.Node.Replication;
using Replicator.Protocol.Peer.Messages;

namespace Replicator.Node.Tests.Replication;

/// <summary>Each rule of the checks a peer request passes before its handler, one table row per request that does not fit.</summary>
public sealed class PeerRequestGuardTests
{
    private static readonly Guid Paired = Guid.Parse("0e7a11ce-0000-4000-8000-000000000001");
    private static readonly Guid Owned = Guid.Parse("0e7a11ce-0000-4000-8000-000000000002");
    private static readonly Guid Unpaired = Guid.Parse("0e7a11ce-0000-4000-8000-000000000003");
    private static readonly Guid BeingPaired = Guid.Parse("0e7a11ce-0000-4000-8000-000000000004");
    private static readonly Guid SplitBrain = Guid.Parse("0e7a11ce-0000-4000-8000-000000000005");
    private static readonly Guid Missing = Guid.Parse("0e7a11ce-0000-4000-8000-000000000006");
    private const int MaxPayload = 32 << 20;

    public static TheoryData<string> Refused => new()
    {
        "replicated write to a volume not paired on this connection",
        "replicated write to a volume this node orders",
        "resync write to a volume this node orders",
        "resync write to a volume not paired",
        "trim of a volume not paired",
        "write of an unknown kind",
        "write to a volume this node lacks",
        "checksums of 512-byte regions",
        "checksums of regions that are not a power of two",
        "checksums of more regions than a reply holds",
        "VolumeConnect from the side that did not dial",
        "BitmapPush for a volume not being paired",
        "VolumeStart for a volume not being paired",
        "create of a volume beyond maxVolumeSize",
        "create of a volume of an unaligned size",
        "create of a volume with a bad name",
        "create of a second volume with a name in use",
        "create with a preferred node outside the pair",
        "resize beyond maxVolumeSize",
        "prefer a node outside the pair",
        "delete of a volume id that is not one",
        "discard of a replica not in split brain",
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public void A_request_that_does_not_fit_the_pairing_is_refused_with_a_reason(string name)
    {
        var (request, dialed, status, phrase) = Case(name);

        var refusal = PeerRequestGuard.Check(request, new View(dialed), MaxPayload);

        Assert.NotNull(refusal);
        Assert.Equal(status, refusal.Value.Status);
        Assert.Contains(phrase, refusal.Value.Reason, StringComparison.Ordinal);
    }

    public static TheoryData<string> Admitted => new()
    {
        "replicated write to a paired volume the peer orders",
        "resync write to a volume being paired whose new owner is the peer",
        "forwarded write to a volume this node orders",
        "checksums of 4 KiB regions",
        "VolumeConnect from the dialer",
        "BitmapPush for a volume being paired",
        "create of a new volume",
        "resize within maxVolumeSize",
        "delete of an unknown volume (it is gone already)",
        "discard of a replica in split brain",
        "flush of the pool",
    };

    [Theory]
    [MemberData(nameof(Admitted))]
    public void A_request_that_fits_goes_to_its_handler(string name)
    {
        var (request, dialed) = Fitting(name);

        Assert.Null(PeerRequestGuard.Check(request, new View(dialed), MaxPayload));
    }

    [Fact]
    public void A_resync_completion_is_taken_only_from_the_node_that_orders_the_volume()
    {
        Assert.Null(PeerRequestGuard.CheckResyncSource(Paired.ToString(), new View(false)));

        var fromTarget = PeerRequestGuard.CheckResyncSource(Owned.ToString(), new View(false));
        Assert.Equal(ReplyStatus.NotPermitted, fromTarget!.Value.Status);
        Assert.Contains("a orders volume", fromTarget.Value.Reason, StringComparison.Ordinal);
        Assert.Contains("a ResyncComplete from b does not fit", fromTarget.Value.Reason, StringComparison.Ordinal);

        var unpaired = PeerRequestGuard.CheckResyncSource(Unpaired.ToString(), new View(false));
        Assert.Contains("is not paired with b on this connection", unpaired!.Value.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_hello_announcing_a_volume_beyond_the_largest_allowed_is_refused()
    {
        var huge = new VolumeDescriptor { VolumeId = Missing.ToString(), Name = "huge", Size = ulong.MaxValue - 4095, AllocationUnit = 65536 };

        var problem = PeerRequestGuard.CheckAnnouncement(huge, new View(false).VolumeSizeProblem);

        Assert.Contains("its volume 'huge'", problem, StringComparison.Ordinal);
        Assert.Contains("larger than this node allows", problem, StringComparison.Ordinal);
        Assert.Null(PeerRequestGuard.CheckAnnouncement(new VolumeDescriptor { VolumeId = Missing.ToString(), Name = "fine", Size = 1 << 30 }, new View(false).VolumeSizeProblem));
    }

    private static (Envelope Request, bool Dialed, ReplyStatus Status, string Phrase) Case(string name) => name switch
    {
        "replicated write to a volume not paired on this connection" => (Write(Unpaired, WriteKind.Replicate), false, ReplyStatus.NotPermitted, "is not paired with b on this connection"),
        "replicated write to a volume this node orders" => (Write(Owned, WriteKind.Replicate), false, ReplyStatus.NotPermitted, "a orders the changes of volume"),
        "resync write to a volume this node orders" => (Write(Owned, WriteKind.Resync), false, ReplyStatus.NotPermitted, "a resync write from b does not fit"),
        "resync write to a volume not paired" => (Write(Unpaired, WriteKind.Resync), false, ReplyStatus.NotPermitted, "a resync write would change this replica outside the pairing"),
        "trim of a volume not paired" => (new Envelope { Trim = new TrimRequest { VolumeId = Unpaired.ToString(), Length = 4096, Kind = WriteKind.Replicate } }, false, ReplyStatus.NotPermitted, "replicated trim"),
        "write of an unknown kind" => (Write(Paired, (WriteKind)7), false, ReplyStatus.Invalid, "unknown kind (7)"),
        "write to a volume this node lacks" => (Write(Missing, WriteKind.Replicate), false, ReplyStatus.UnknownVolume, "has no volume"),
        "checksums of 512-byte regions" => (Checksums(Paired, 512, 1 << 20), false, ReplyStatus.Invalid, "a checksum region of 512 bytes"),
        "checksums of regions that are not a power of two" => (Checksums(Paired, 12288, 1 << 20), false, ReplyStatus.Invalid, "a power of two"),
        "checksums of more regions than a reply holds" => (Checksums(Paired, 4096, 1L << 40), false, ReplyStatus.Invalid, "would not fit one reply"),
        "VolumeConnect from the side that did not dial" => (new Envelope { VolumeConnect = new VolumeConnectRequest { VolumeId = Paired.ToString() } }, true, ReplyStatus.Invalid, "a dialed this connection and drives the pairing"),
        "BitmapPush for a volume not being paired" => (new Envelope { BitmapPush = new BitmapPushRequest { VolumeId = Paired.ToString() } }, false, ReplyStatus.Invalid, "is not being paired"),
        "VolumeStart for a volume not being paired" => (new Envelope { VolumeStart = new VolumeStartRequest { VolumeId = Unpaired.ToString() } }, false, ReplyStatus.Invalid, "is not being paired"),
        "create of a volume beyond maxVolumeSize" => (Create(Missing, "big", 1L << 50), false, ReplyStatus.Invalid, "larger than this node allows"),
        "create of a volume of an unaligned size" => (Create(Missing, "odd", 5000), false, ReplyStatus.Invalid, "not a positive multiple of 4096"),
        "create of a volume with a bad name" => (Create(Missing, "../etc", 1 << 20), false, ReplyStatus.Invalid, "has a name this node cannot use"),
        "create of a second volume with a name in use" => (Create(Missing, "paired", 1 << 20), false, ReplyStatus.Invalid, "has another volume named 'paired'"),
        "create with a preferred node outside the pair" => (Create(Missing, "new", 1 << 20, "mallory"), false, ReplyStatus.Invalid, "'mallory' is not a node of this pair"),
        "resize beyond maxVolumeSize" => (new Envelope { VolumeResize = new VolumeResizeRequest { VolumeId = Paired.ToString(), Size = 1UL << 50 } }, false, ReplyStatus.Invalid, "larger than this node allows"),
        "prefer a node outside the pair" => (new Envelope { VolumePrefer = new VolumePreferRequest { VolumeId = Paired.ToString(), PreferredNode = "mallory" } }, false, ReplyStatus.Invalid, "not a node of this pair"),
        "delete of a volume id that is not one" => (new Envelope { VolumeDelete = new VolumeDeleteRequest { VolumeId = "vol0" } }, false, ReplyStatus.Invalid, "which is not a volume id"),
        "discard of a replica not in split brain" => (new Envelope { DiscardReplica = new DiscardReplicaRequest { VolumeId = Paired.ToString() } }, false, ReplyStatus.Invalid, "is not in split brain"),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, null),
    };

    private static (Envelope Request, bool Dialed) Fitting(string name) => name switch
    {
        "replicated write to a paired volume the peer orders" => (Write(Paired, WriteKind.Replicate), false),
        "resync write to a volume being paired whose new owner is the peer" => (Write(BeingPaired, WriteKind.Resync), false),
        "forwarded write to a volume this node orders" => (Write(Owned, WriteKind.Forward), false),
        "checksums of 4 KiB regions" => (Checksums(Paired, 4096, 64 << 20), false),
        "VolumeConnect from the dialer" => (new Envelope { VolumeConnect = new VolumeConnectRequest { VolumeId = Paired.ToString() } }, false),
        "BitmapPush for a volume being paired" => (new Envelope { BitmapPush = new BitmapPushRequest { VolumeId = BeingPaired.ToString() } }, false),
        "create of a new volume" => (Create(Missing, "new", 1 << 30, "a"), true),
        "resize within maxVolumeSize" => (new Envelope { VolumeResize = new VolumeResizeRequest { VolumeId = Paired.ToString(), Size = 1UL << 40 } }, false),
        "delete of an unknown volume (it is gone already)" => (new Envelope { VolumeDelete = new VolumeDeleteRequest { VolumeId = Missing.ToString() } }, false),
        "discard of a replica in split brain" => (new Envelope { DiscardReplica = new DiscardReplicaRequest { VolumeId = SplitBrain.ToString() } }, false),
        "flush of the pool" => (new Envelope { Flush = new FlushRequest() }, false),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, null),
    };

    private static Envelope Write(Guid volume, WriteKind kind) =>
        new() { Write = new WriteRequest { VolumeId = volume.ToString(), Offset = 0, Length = 4096, Kind = kind } };

    private static Envelope Checksums(Guid volume, uint regionSize, long length) =>
        new() { RegionChecksums = new RegionChecksumRequest { VolumeId = volume.ToString(), Length = (ulong)length, RegionSize = regionSize } };

    private static Envelope Create(Guid volume, string name, long size, string preferred = "") =>
        new() { VolumeCreate = new VolumeCreateRequest { Volume = new VolumeDescriptor { VolumeId = volume.ToString(), Name = name, Size = (ulong)size }, PreferredNode = preferred } };

    /// <summary>Node a, paired with b: one volume per state the checks tell apart.</summary>
    private sealed class View(bool dialed) : IPairingView
    {
        public string LocalName => "a";

        public string PeerName => "b";

        public bool LocalDialed => dialed;

        public VolumePairingState PairingOf(Guid volumeId) => volumeId switch
        {
            _ when volumeId == Paired => new(true, PairingStage.Paired, PeerOrders: true, SplitBrain: false),
            _ when volumeId == Owned => new(true, PairingStage.Paired, PeerOrders: false, SplitBrain: false),
            _ when volumeId == Unpaired => new(true, PairingStage.None, PeerOrders: false, SplitBrain: false),
            _ when volumeId == BeingPaired => new(true, PairingStage.Pairing, PeerOrders: true, SplitBrain: false),
            _ when volumeId == SplitBrain => new(true, PairingStage.None, PeerOrders: false, SplitBrain: true),
            _ => VolumePairingState.NoVolume,
        };

        public Guid? VolumeNamed(string name) => name == "paired" ? Paired : null;

        public string? VolumeSizeProblem(long size) => size > 64L << 40 ? $"a volume of {size} bytes is larger than this node allows" : null;
    }
}

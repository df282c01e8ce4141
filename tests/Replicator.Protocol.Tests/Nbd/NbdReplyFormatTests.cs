using System.Buffers.Binary;
using Replicator.Core.Devices;
using Replicator.Protocol.Nbd;

namespace Replicator.Protocol.Tests.Nbd;

public class NbdReplyFormatTests
{
    private const AllocationState Hole = AllocationState.Hole | AllocationState.Zero;

    [Fact]
    public void DescriptorsFollowTheExtentsAndMapTheStates()
    {
        var descriptors = Encode([new(4096, AllocationState.Data), new(8192, Hole), new(512, AllocationState.Zero)], 12800);

        Assert.Equal([(4096u, 0u), (8192u, NbdWire.StateHole | NbdWire.StateZero), (512u, NbdWire.StateZero)], descriptors);
    }

    [Fact]
    public void TheLastDescriptorIsClippedToTheRequest()
    {
        var descriptors = Encode([new(4096, AllocationState.Data), new(1 << 30, Hole)], 6000);

        Assert.Equal([(4096u, 0u), (1904u, NbdWire.StateHole | NbdWire.StateZero)], descriptors);
    }

    [Fact]
    public void ReqOneSendsOneDescriptorNoLongerThanTheRequest()
    {
        Assert.Equal([(4096u, 0u)], Encode([new(4096, AllocationState.Data), new(4096, Hole)], 8192, reqOne: true));
        Assert.Equal([(1000u, 0u)], Encode([new(4096, AllocationState.Data)], 1000, reqOne: true));
    }

    [Fact]
    public void WithAnAlignmentAnExtentEndingOffItEndsTheList()
    {
        var descriptors = Encode([new(1536, AllocationState.Data), new(100, Hole), new(4096, Hole)], 8192, alignment: 512);

        Assert.Equal([(1536u, 0u)], descriptors);
    }

    [Fact]
    public void WithAnAlignmentAMisalignedTailIsDroppedAtTheCut()
    {
        Assert.Equal([(1024u, 0u)], Encode([new(1100, AllocationState.Data), new(4096, Hole)], 8192, alignment: 512));
    }

    [Fact]
    public void WithAnAlignmentAShortFirstExtentBecomesOneBlockOfStatusZero()
    {
        var descriptors = Encode([new(100, Hole), new(4096, Hole)], 8192, alignment: 512);

        Assert.Equal([(512u, 0u)], descriptors);
    }

    [Fact]
    public void AtMostTheDescriptorLimitIsSent()
    {
        var extents = Enumerable.Range(0, 3000).Select(i => new AllocationExtent(512, i % 2 == 0 ? AllocationState.Data : Hole)).ToArray();

        var descriptors = Encode(extents, 3000 * 512);

        Assert.Equal(NbdWire.MaxBlockStatusDescriptors, descriptors.Count);
    }

    [Fact]
    public void NoExtentsOrAnEmptyExtentIsADeviceError()
    {
        var span = new byte[64];

        Assert.Equal(-1, NbdReplyFormat.WriteBlockStatusPayload(span, 1, [], 512, false, 1));
        Assert.Equal(-1, NbdReplyFormat.WriteBlockStatusPayload(span, 1, [new(0, AllocationState.Data)], 512, false, 1));
    }

    [Fact]
    public void AnErrorMessageIsCutAtTheStringLimit()
    {
        var message = new string('é', 3000);
        var span = new byte[NbdReplyFormat.MaxErrorPayloadLength(message)];

        var length = NbdReplyFormat.WriteErrorPayload(span, NbdWire.EIo, message);

        Assert.Equal(NbdWire.EIo, BinaryPrimitives.ReadUInt32BigEndian(span));
        Assert.Equal(NbdWire.MaxStringLength, BinaryPrimitives.ReadUInt16BigEndian(span.AsSpan(4)));
        Assert.Equal(6 + NbdWire.MaxStringLength, length);
    }

    private static List<(uint Length, uint Status)> Encode(AllocationExtent[] extents, uint length, bool reqOne = false, uint alignment = 1)
    {
        var span = new byte[NbdReplyFormat.MaxBlockStatusPayloadLength(extents.Length)];
        var written = NbdReplyFormat.WriteBlockStatusPayload(span, 7, extents, length, reqOne, alignment);
        Assert.Equal(7u, BinaryPrimitives.ReadUInt32BigEndian(span));
        var descriptors = new List<(uint, uint)>();
        for (var at = 4; at < written; at += 8)
        {
            descriptors.Add((BinaryPrimitives.ReadUInt32BigEndian(span.AsSpan(at)), BinaryPrimitives.ReadUInt32BigEndian(span.AsSpan(at + 4))));
        }

        return descriptors;
    }
}

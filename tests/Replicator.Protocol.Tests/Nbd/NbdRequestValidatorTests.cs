using Replicator.Core.Devices;
using Replicator.Protocol.Nbd;

namespace Replicator.Protocol.Tests.Nbd;

public class NbdRequestValidatorTests
{
    private const long Size = 64L << 20;
    private const uint Max = NbdWire.MaximumBlockSize;

    private static readonly NbdTransmissionPolicy Writable = new(
        NbdTransmissionPolicy.FlagsFor(DeviceFeatures.AllWritable, structuredReplies: true), true, BaseAllocation: true, Alignment: 1);

    private static readonly NbdTransmissionPolicy Simple = new(
        NbdTransmissionPolicy.FlagsFor(DeviceFeatures.AllWritable, structuredReplies: false), false, BaseAllocation: false, Alignment: 1);

    private static readonly NbdTransmissionPolicy ReadOnly = Writable with
    {
        TransmissionFlags = NbdTransmissionPolicy.FlagsFor(DeviceFeatures.AllWritable | DeviceFeatures.ReadOnly, structuredReplies: true),
    };

    private static readonly NbdTransmissionPolicy Bare = Simple with
    {
        TransmissionFlags = NbdTransmissionPolicy.FlagsFor(DeviceFeatures.None, structuredReplies: false),
    };

    private static readonly NbdTransmissionPolicy Negotiated = Writable with { Alignment = 512 };

    private static readonly Dictionary<string, (NbdRequest Request, NbdTransmissionPolicy Policy, uint Expected)> Table = new()
    {
        ["read in range"] = (Req(NbdWire.CmdRead, 0, 4096), Writable, NbdWire.Success),
        ["read up to the end"] = (Req(NbdWire.CmdRead, Size - 512, 512), Writable, NbdWire.Success),
        ["read of zero bytes at the end"] = (Req(NbdWire.CmdRead, Size, 0), Writable, NbdWire.Success),
        ["read past the end"] = (Req(NbdWire.CmdRead, Size - 512, 1024), Writable, NbdWire.EInval),
        ["read starting past the end"] = (Req(NbdWire.CmdRead, Size + 1, 0), Writable, NbdWire.EInval),
        ["read whose end overflows"] = (Req(NbdWire.CmdRead, ulong.MaxValue - 10, 4096), Writable, NbdWire.EInval),
        ["write past the end"] = (Req(NbdWire.CmdWrite, Size - 512, 1024), Writable, NbdWire.ENoSpc),
        ["write whose end overflows"] = (Req(NbdWire.CmdWrite, ulong.MaxValue, 1), Writable, NbdWire.ENoSpc),
        ["write zeroes past the end"] = (Req(NbdWire.CmdWriteZeroes, Size, 512), Writable, NbdWire.ENoSpc),
        ["trim past the end"] = (Req(NbdWire.CmdTrim, Size, 512), Writable, NbdWire.EInval),
        ["cache past the end"] = (Req(NbdWire.CmdCache, Size, 512), Writable, NbdWire.EInval),
        ["block status past the end"] = (Req(NbdWire.CmdBlockStatus, Size, 512), Writable, NbdWire.EInval),
        ["read over the maximum"] = (Req(NbdWire.CmdRead, 0, Max + 1), Writable, NbdWire.EInval),
        ["write over the maximum"] = (Req(NbdWire.CmdWrite, 0, Max + 1), Writable, NbdWire.EInval),
        ["cache over the maximum"] = (Req(NbdWire.CmdCache, 0, Max + 1), Writable, NbdWire.EInval),
        ["write zeroes over the maximum, sizes not negotiated"] = (Req(NbdWire.CmdWriteZeroes, 0, Max + 512), Writable, NbdWire.Success),
        ["write zeroes over the maximum, sizes negotiated"] = (Req(NbdWire.CmdWriteZeroes, 0, Max + 512), Negotiated, NbdWire.Success),
        ["trim over the maximum, sizes negotiated"] = (Req(NbdWire.CmdTrim, 0, Max + 512), Negotiated, NbdWire.Success),
        ["block status over the maximum"] = (Req(NbdWire.CmdBlockStatus, 0, Max + 512), Negotiated, NbdWire.Success),
        ["unknown command"] = (Req(9, 0, 0), Writable, NbdWire.EInval),
        ["resize command"] = (Req(8, 0, 0), Writable, NbdWire.EInval),
        ["unknown flag"] = (Req(NbdWire.CmdRead, 0, 512, flags: 1 << 7), Writable, NbdWire.EInval),
        ["FUA on read is accepted"] = (Req(NbdWire.CmdRead, 0, 512, NbdWire.CmdFlagFua), Writable, NbdWire.Success),
        ["FUA when not advertised"] = (Req(NbdWire.CmdWrite, 0, 512, NbdWire.CmdFlagFua), Bare, NbdWire.EInval),
        ["NO_HOLE on write"] = (Req(NbdWire.CmdWrite, 0, 512, NbdWire.CmdFlagNoHole), Writable, NbdWire.EInval),
        ["NO_HOLE on write zeroes"] = (Req(NbdWire.CmdWriteZeroes, 0, 512, NbdWire.CmdFlagNoHole), Writable, NbdWire.Success),
        ["DF on read with structured replies"] = (Req(NbdWire.CmdRead, 0, 512, NbdWire.CmdFlagDf), Writable, NbdWire.Success),
        ["DF on read without structured replies"] = (Req(NbdWire.CmdRead, 0, 512, NbdWire.CmdFlagDf), Simple, NbdWire.EInval),
        ["DF on write"] = (Req(NbdWire.CmdWrite, 0, 512, NbdWire.CmdFlagDf), Writable, NbdWire.EInval),
        ["REQ_ONE on read"] = (Req(NbdWire.CmdRead, 0, 512, NbdWire.CmdFlagReqOne), Writable, NbdWire.EInval),
        ["REQ_ONE on block status"] = (Req(NbdWire.CmdBlockStatus, 0, 512, NbdWire.CmdFlagReqOne), Writable, NbdWire.Success),
        ["FAST_ZERO is never advertised"] = (Req(NbdWire.CmdWriteZeroes, 0, 512, NbdWire.CmdFlagFastZero), Writable, NbdWire.EInval),
        ["write on read-only"] = (Req(NbdWire.CmdWrite, 0, 512), ReadOnly, NbdWire.EPerm),
        ["trim on read-only"] = (Req(NbdWire.CmdTrim, 0, 512), ReadOnly, NbdWire.EPerm),
        ["write zeroes on read-only"] = (Req(NbdWire.CmdWriteZeroes, 0, 512), ReadOnly, NbdWire.EPerm),
        ["write past the end on read-only"] = (Req(NbdWire.CmdWrite, Size, 512), ReadOnly, NbdWire.EPerm),
        ["read on read-only"] = (Req(NbdWire.CmdRead, 0, 512), ReadOnly, NbdWire.Success),
        ["flush when not advertised"] = (Req(NbdWire.CmdFlush, 0, 0), Bare, NbdWire.EInval),
        ["trim when not advertised"] = (Req(NbdWire.CmdTrim, 0, 512), Bare, NbdWire.EInval),
        ["write zeroes when not advertised"] = (Req(NbdWire.CmdWriteZeroes, 0, 512), Bare, NbdWire.EInval),
        ["cache when not advertised"] = (Req(NbdWire.CmdCache, 0, 512), Bare, NbdWire.EInval),
        ["block status without a meta context"] = (Req(NbdWire.CmdBlockStatus, 0, 512), Simple, NbdWire.EInval),
        ["block status of zero bytes"] = (Req(NbdWire.CmdBlockStatus, 0, 0), Writable, NbdWire.EInval),
        ["flush"] = (Req(NbdWire.CmdFlush, 0, 0), Writable, NbdWire.Success),
        ["flush with an offset"] = (Req(NbdWire.CmdFlush, 512, 0), Writable, NbdWire.EInval),
        ["flush with a length"] = (Req(NbdWire.CmdFlush, 0, 512), Writable, NbdWire.EInval),
        ["unaligned offset, sizes negotiated"] = (Req(NbdWire.CmdRead, 1, 512), Negotiated, NbdWire.EInval),
        ["unaligned length, sizes negotiated"] = (Req(NbdWire.CmdWrite, 0, 513), Negotiated, NbdWire.EInval),
        ["unaligned trim, sizes negotiated"] = (Req(NbdWire.CmdTrim, 512, 100), Negotiated, NbdWire.EInval),
        ["unaligned, sizes not negotiated"] = (Req(NbdWire.CmdWrite, 1, 513), Writable, NbdWire.Success),
    };

    public static TheoryData<string> Cases() => [.. Table.Keys];

    [Theory]
    [MemberData(nameof(Cases))]
    public void EachRequestGetsTheErrorTheSpecNames(string name)
    {
        var (request, policy, expected) = Table[name];
        var error = NbdRequestValidator.Validate(request, policy, Size, out var reason);

        Assert.True(expected == error, $"{name}: expected {NbdErrors.ErrorName(expected)}, got {NbdErrors.ErrorName(error)} ({reason})");
        Assert.Equal(expected == NbdWire.Success, reason is null);
    }

    private static NbdRequest Req(ushort type, ulong offset, uint length, ushort flags = 0) => new(flags, type, 1, offset, length);
}

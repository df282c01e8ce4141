using Replicator.Protocol.Nbd;
using Replicator.Protocol.Tests.Nbd.Support;

namespace Replicator.Protocol.Tests.Nbd;

/// <summary>
/// Valid client messages, shared by the parser tests (every prefix, one byte per segment) and the fuzzing
/// harness (<c>benchmarks/fuzz</c>, which compiles this file into its seed corpus). Each entry is a name for the
/// test runner and the bytes on the wire. No test framework here: the theories' data is in NbdSamples.Theories.cs.
/// </summary>
internal static partial class NbdSamples
{
    public static readonly IReadOnlyDictionary<string, byte[]> Options = new Dictionary<string, byte[]>
    {
        ["export-name"] = NbdBytes.Option(NbdWire.OptExportName, "vol0"u8.ToArray()),
        ["export-name-default"] = NbdBytes.Option(NbdWire.OptExportName),
        ["abort"] = NbdBytes.Option(NbdWire.OptAbort),
        ["list"] = NbdBytes.Option(NbdWire.OptList),
        ["starttls"] = NbdBytes.Option(NbdWire.OptStartTls),
        ["info"] = NbdBytes.Option(NbdWire.OptInfo, NbdBytes.InfoData("vol0", NbdWire.InfoBlockSize)),
        ["go"] = NbdBytes.Option(NbdWire.OptGo, NbdBytes.InfoData("vol0", NbdWire.InfoName, NbdWire.InfoDescription, NbdWire.InfoBlockSize)),
        ["structured-reply"] = NbdBytes.Option(NbdWire.OptStructuredReply),
        ["list-meta-context"] = NbdBytes.Option(NbdWire.OptListMetaContext, NbdBytes.MetaContextData("vol0")),
        ["set-meta-context"] = NbdBytes.Option(NbdWire.OptSetMetaContext, NbdBytes.MetaContextData("vol0", NbdWire.BaseAllocation)),
        ["unknown"] = NbdBytes.Option(0x4242, [1, 2, 3]),
    };

    public static readonly IReadOnlyDictionary<string, byte[]> Requests = new Dictionary<string, byte[]>
    {
        ["read"] = NbdBytes.Request(NbdWire.CmdRead, offset: 4096, length: 512, handle: 0x0102030405060708),
        ["read-df"] = NbdBytes.Request(NbdWire.CmdRead, offset: 0, length: 65536, flags: NbdWire.CmdFlagDf, handle: 2),
        ["write"] = NbdBytes.Request(NbdWire.CmdWrite, offset: 512, length: 16, handle: 3, payload: NbdBytes.Pattern(16, 3)),
        ["write-fua"] = NbdBytes.Request(NbdWire.CmdWrite, offset: 0, length: 4, flags: NbdWire.CmdFlagFua, handle: 4, payload: [1, 2, 3, 4]),
        ["disc"] = NbdBytes.Request(NbdWire.CmdDisc, handle: 5),
        ["flush"] = NbdBytes.Request(NbdWire.CmdFlush, handle: 6),
        ["trim"] = NbdBytes.Request(NbdWire.CmdTrim, offset: 8192, length: 8192, handle: 7),
        ["cache"] = NbdBytes.Request(NbdWire.CmdCache, offset: 0, length: 1 << 20, handle: 8),
        ["write-zeroes"] = NbdBytes.Request(NbdWire.CmdWriteZeroes, offset: 0, length: 4096, flags: NbdWire.CmdFlagNoHole, handle: 9),
        ["block-status"] = NbdBytes.Request(NbdWire.CmdBlockStatus, offset: 0, length: 1 << 20, flags: NbdWire.CmdFlagReqOne, handle: ulong.MaxValue),
    };
}

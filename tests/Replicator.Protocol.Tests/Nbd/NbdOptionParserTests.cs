using System.Buffers;
using Replicator.Protocol.Nbd;
using Replicator.Protocol.Tests.Nbd.Support;

namespace Replicator.Protocol.Tests.Nbd;

public class NbdOptionParserTests
{
    [Fact]
    public void InfoDataGivesTheNameAndTheKnownRequests()
    {
        var data = Sequences.BytePerSegment(NbdBytes.InfoData("vol0", NbdWire.InfoBlockSize, 0x7777, NbdWire.InfoName));

        var info = NbdOptionParser.ParseInfo(data, out var error);

        Assert.Null(error);
        Assert.Equal(new NbdInfoOption("vol0", NbdInfoRequests.BlockSize | NbdInfoRequests.Name), info);
    }

    [Fact]
    public void InfoDataWithAnEmptyNameAndNoRequestsIsTheDefaultExport()
    {
        var info = NbdOptionParser.ParseInfo(new ReadOnlySequence<byte>(NbdBytes.InfoData("")), out _);

        Assert.Equal(new NbdInfoOption("", NbdInfoRequests.None), info);
    }

    public static TheoryData<string, byte[], string> MalformedInfo() => new()
    {
        { "empty", [], "before the export name length" },
        { "name length beyond data", [0, 0, 0, 9, (byte)'a', 0, 0], "exceeds" },
        { "no request count", [0, 0, 0, 1, (byte)'a'], "number of information requests" },
        { "count larger than data", [0, 0, 0, 1, (byte)'a', 0, 2, 0, 3], "2 information requests need 4 bytes" },
        { "trailing byte", [0, 0, 0, 1, (byte)'a', 0, 1, 0, 3, 9], "1 information requests need 2 bytes but 3 remain" },
        { "name with NUL", [0, 0, 0, 2, (byte)'a', 0, 0, 0], "NUL" },
        { "name not UTF-8", [0, 0, 0, 2, 0xC3, 0x28, 0, 0], "UTF-8" },
        { "name over 4096 bytes", [.. NbdBytes.U32(4097), .. new byte[4097], 0, 0], "more than the 4096" },
    };

    [Theory]
    [MemberData(nameof(MalformedInfo))]
    public void MalformedInfoDataIsRefusedWithAReason(string name, byte[] data, string expected)
    {
        var info = NbdOptionParser.ParseInfo(new ReadOnlySequence<byte>(data), out var error);

        Assert.Null(info);
        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.False(string.IsNullOrEmpty(name));
    }

    [Fact]
    public void MetaContextDataGivesTheNameAndQueries()
    {
        var data = Sequences.BytePerSegment(NbdBytes.MetaContextData("vol0", "base:allocation", "qemu:dirty-bitmap:x"));

        var request = NbdOptionParser.ParseMetaContext(data, out var error);

        Assert.Null(error);
        Assert.Equal("vol0", request!.ExportName);
        Assert.Equal(["base:allocation", "qemu:dirty-bitmap:x"], request.Queries);
    }

    public static TheoryData<string, byte[], string> MalformedMetaContext() => new()
    {
        { "empty", [], "before the export name length" },
        { "no query count", NbdBytes.U32(0), "number of queries" },
        { "query count larger than data", [.. NbdBytes.U32(0), .. NbdBytes.U32(1_000_000)], "before the query length" },
        { "query length beyond data", [.. NbdBytes.U32(0), .. NbdBytes.U32(1), .. NbdBytes.U32(50), (byte)'b'], "exceeds" },
        { "query without a colon", NbdBytes.MetaContextData("vol0", "allocation"), "namespace and a colon" },
        { "query with an empty namespace", NbdBytes.MetaContextData("vol0", ":allocation"), "namespace and a colon" },
        { "trailing bytes", [.. NbdBytes.MetaContextData("vol0"), 1, 2], "2 bytes follow" },
    };

    [Theory]
    [MemberData(nameof(MalformedMetaContext))]
    public void MalformedMetaContextDataIsRefusedWithAReason(string name, byte[] data, string expected)
    {
        var request = NbdOptionParser.ParseMetaContext(new ReadOnlySequence<byte>(data), out var error);

        Assert.Null(request);
        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.False(string.IsNullOrEmpty(name));
    }

    [Fact]
    public void AnExportNameIsTheWholeData()
    {
        Assert.Equal("vol0", NbdOptionParser.ParseExportName(Sequences.BytePerSegment("vol0"u8.ToArray()), out _));
        Assert.Equal("", NbdOptionParser.ParseExportName(ReadOnlySequence<byte>.Empty, out _));
        Assert.Null(NbdOptionParser.ParseExportName(new ReadOnlySequence<byte>(new byte[5000]), out var error));
        Assert.Contains("4096", error, StringComparison.Ordinal);
    }
}

using System.Buffers.Binary;
using Replicator.Core.Devices;
using Replicator.Protocol.Nbd;
using Replicator.Protocol.Tests.Nbd.Support;

namespace Replicator.Protocol.Tests.Nbd;

public class NbdHandshakeTests
{
    private const int Size = 1 << 20;

    [Fact]
    public async Task TheGreetingOffersFixedNewstyleAndNoZeroes()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size));

        var flags = await harness.Client.ReadGreetingAsync();

        Assert.Equal(NbdWire.FlagFixedNewstyle | NbdWire.FlagNoZeroes, flags);
    }

    [Fact]
    public async Task UnknownClientFlagsCloseTheConnection()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size));

        await harness.Client.OpenAsync(NbdWire.ClientFlagFixedNewstyle | 0x80);

        Assert.True(await harness.Client.ServerClosedAsync());
        Assert.Equal(NbdConnectionEndReason.UnsupportedClientFlags, await harness.EndedAsync());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ExportNameAnswersSizeAndFlagsWithZeroesUnlessNoZeroes(bool noZeroes)
    {
        var device = new MemoryBlockDevice(Size);
        await using var harness = NbdSessionHarness.Serving(device);
        await harness.Client.OpenAsync(NbdWire.ClientFlagFixedNewstyle | (noZeroes ? NbdWire.ClientFlagNoZeroes : 0));

        await harness.Client.SendAsync(NbdBytes.Option(NbdWire.OptExportName, "vol0"u8.ToArray()));
        var reply = await harness.Client.ReadExactAsync(10 + (noZeroes ? 0 : 124));

        Assert.Equal((ulong)Size, BinaryPrimitives.ReadUInt64BigEndian(reply));
        Assert.Equal(NbdTransmissionPolicy.FlagsFor(device.Features, structuredReplies: false), BinaryPrimitives.ReadUInt16BigEndian(reply.AsSpan(8)));
        NbdBytes.AssertZero(reply[10..]);
        await harness.Client.AssertWorksAsync();
    }

    [Fact]
    public async Task ExportNameOfAnUnknownExportClosesTheConnection()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size));
        await harness.Client.OpenAsync();

        await harness.Client.SendAsync(NbdBytes.Option(NbdWire.OptExportName, "nope"u8.ToArray()));

        Assert.True(await harness.Client.ServerClosedAsync());
        Assert.Equal(NbdConnectionEndReason.ExportRefused, await harness.EndedAsync());
    }

    [Fact]
    public async Task AbortIsAcknowledgedAndEndsTheConnection()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size));
        await harness.Client.OpenAsync();

        var replies = await harness.Client.OptionAsync(NbdWire.OptAbort, [1, 2, 3]);

        Assert.Equal(NbdWire.RepAck, replies.Single().Type);
        Assert.True(await harness.Client.ServerClosedAsync());
        Assert.Equal(NbdConnectionEndReason.ClientAbort, await harness.EndedAsync());
    }

    [Fact]
    public async Task ListNamesEveryExportWithItsDescription()
    {
        var catalog = new TestExportCatalog().Add("vol0", new MemoryBlockDevice(Size), "first").Add("vol1", new MemoryBlockDevice(Size));
        await using var harness = new NbdSessionHarness(catalog);
        await harness.Client.OpenAsync();

        var replies = await harness.Client.OptionAsync(NbdWire.OptList);

        Assert.Equal([NbdWire.RepServer, NbdWire.RepServer, NbdWire.RepAck], replies.Select(r => r.Type));
        Assert.Equal(
            ["vol0|first", "vol1|"],
            replies.Take(2).Select(r => $"{r.Text[4..(4 + (int)BinaryPrimitives.ReadUInt32BigEndian(r.Data))]}|{r.Text[(4 + (int)BinaryPrimitives.ReadUInt32BigEndian(r.Data))..]}"));
    }

    [Fact]
    public async Task InfoDescribesTheExportAndStaysInTheHandshake()
    {
        var device = new MemoryBlockDevice(Size);
        await using var harness = NbdSessionHarness.Serving(device);
        await harness.Client.OpenAsync();

        var replies = await harness.Client.OptionAsync(
            NbdWire.OptInfo, NbdBytes.InfoData("vol0", NbdWire.InfoName, NbdWire.InfoDescription, NbdWire.InfoBlockSize));

        Assert.Equal(NbdWire.RepAck, replies[^1].Type);
        var infos = replies.SkipLast(1).ToDictionary(r => r.InfoType, r => r.Data);
        Assert.Equal([NbdWire.InfoExport, NbdWire.InfoName, NbdWire.InfoDescription, NbdWire.InfoBlockSize], infos.Keys.Order());
        Assert.Equal((ulong)Size, BinaryPrimitives.ReadUInt64BigEndian(infos[NbdWire.InfoExport].AsSpan(2)));
        Assert.Equal("vol0"u8.ToArray(), infos[NbdWire.InfoName][2..]);
        Assert.Equal("the first volume"u8.ToArray(), infos[NbdWire.InfoDescription][2..]);
        Assert.Equal(512u, BinaryPrimitives.ReadUInt32BigEndian(infos[NbdWire.InfoBlockSize].AsSpan(2)));
        Assert.Equal(4096u, BinaryPrimitives.ReadUInt32BigEndian(infos[NbdWire.InfoBlockSize].AsSpan(6)));
        Assert.Equal(32u << 20, BinaryPrimitives.ReadUInt32BigEndian(infos[NbdWire.InfoBlockSize].AsSpan(10)));
        Assert.Equal(0, harness.Catalog.OpenAttachments);

        var go = await harness.Client.OptionAsync(NbdWire.OptGo, NbdBytes.InfoData("vol0"));
        Assert.Equal(NbdWire.RepAck, go[^1].Type);
        await harness.Client.AssertWorksAsync();
    }

    [Fact]
    public async Task BlockSizeIsSentEvenWhenNotAskedForAndTheMinimumIsOneForAnOddSize()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size + 100));

        var export = await harness.Client.StartAsync();

        Assert.Equal(new NegotiatedExport(Size + 100, export.Flags, 1, 4096, 32u << 20), export);
        await harness.Client.AssertWorksAsync(Size + 100 - 512);
    }

    public static TheoryData<string> Refusals() =>
    [
        "go unknown export", "go malformed", "info unknown export", "go unavailable export", "unknown option", "oversized option",
        "list with data", "starttls", "starttls with data", "structured reply with data", "set meta context before structured",
        "list meta context malformed", "list meta context unknown export",
    ];

    [Theory]
    [MemberData(nameof(Refusals))]
    public async Task ARefusedOptionGetsItsErrorAndTheHandshakeGoesOn(string name)
    {
        var catalog = new TestExportCatalog().Add("vol0", new MemoryBlockDevice(Size)).AddUnavailable("busy", new MemoryBlockDevice(Size));
        await using var harness = new NbdSessionHarness(catalog);
        await harness.Client.OpenAsync();
        var (option, data, expected) = name switch
        {
            "go unknown export" => (NbdWire.OptGo, NbdBytes.InfoData("nope"), NbdWire.RepErrUnknown),
            "go malformed" => (NbdWire.OptGo, [0, 0, 0, 9, 1], NbdWire.RepErrInvalid),
            "info unknown export" => (NbdWire.OptInfo, NbdBytes.InfoData("nope"), NbdWire.RepErrUnknown),
            "go unavailable export" => (NbdWire.OptGo, NbdBytes.InfoData("busy"), NbdWire.RepErrPolicy),
            "unknown option" => (0x4242u, [1, 2, 3], NbdWire.RepErrUnsup),
            "oversized option" => (NbdWire.OptGo, new byte[NbdWire.MaxOptionDataLength + 1], NbdWire.RepErrTooBig),
            "list with data" => (NbdWire.OptList, [1], NbdWire.RepErrInvalid),
            "starttls" => (NbdWire.OptStartTls, [], NbdWire.RepErrPolicy),
            "starttls with data" => (NbdWire.OptStartTls, [1], NbdWire.RepErrInvalid),
            "structured reply with data" => (NbdWire.OptStructuredReply, [1], NbdWire.RepErrInvalid),
            "set meta context before structured" => (NbdWire.OptSetMetaContext, NbdBytes.MetaContextData("vol0", NbdWire.BaseAllocation), NbdWire.RepErrInvalid),
            "list meta context malformed" => (NbdWire.OptListMetaContext, NbdBytes.MetaContextData("vol0", "nocolon"), NbdWire.RepErrInvalid),
            "list meta context unknown export" => (NbdWire.OptListMetaContext, NbdBytes.MetaContextData("nope"), NbdWire.RepErrUnknown),
            _ => throw new ArgumentOutOfRangeException(nameof(name)),
        };

        var replies = await harness.Client.OptionAsync(option, data);

        Assert.Equal(expected, replies.Single().Type);
        Assert.NotEmpty(replies.Single().Text);
        Assert.Single(harness.Logger.Messages(10));
        Assert.Equal(0, harness.Catalog.OpenAttachments);
        await harness.Client.StartAsync(open: false);
        await harness.Client.AssertWorksAsync();
    }

    [Fact]
    public async Task AnOversizedOptionArrivingInPiecesIsSkippedWithoutBufferingIt()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size));
        await harness.Client.OpenAsync();

        await harness.Client.SendAsync(NbdBytes.OptionHeader(NbdWire.OptInfo, 1 << 20));
        Assert.Equal(NbdWire.RepErrTooBig, (await harness.Client.ReadOptionReplyAsync()).Type);
        for (var i = 0; i < 16; i++)
        {
            await harness.Client.SendAsync(new byte[64 * 1024]);
        }

        await harness.Client.StartAsync(open: false);
        await harness.Client.AssertWorksAsync();
    }

    [Theory]
    [InlineData(new string[0], true)]
    [InlineData(new[] { "base:" }, true)]
    [InlineData(new[] { "base:allocation" }, true)]
    [InlineData(new[] { "base:other" }, false)]
    [InlineData(new[] { "x-vendor:thing", "qemu:dirty-bitmap:b" }, false)]
    public async Task ListMetaContextAnswersBaseAllocationForMatchingQueries(string[] queries, bool listed)
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size));
        await harness.Client.OpenAsync();

        var replies = await harness.Client.OptionAsync(NbdWire.OptListMetaContext, NbdBytes.MetaContextData("vol0", queries));

        Assert.Equal(NbdWire.RepAck, replies[^1].Type);
        Assert.Equal(listed ? ["base:allocation"] : Array.Empty<string>(), replies.SkipLast(1).Select(r => r.Text[4..]));
    }

    [Fact]
    public async Task SetMetaContextSelectsBaseAllocationOnlyByItsFullName()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size));
        await harness.Client.OpenAsync();
        await harness.Client.OptionAsync(NbdWire.OptStructuredReply);

        var wildcard = await harness.Client.OptionAsync(NbdWire.OptSetMetaContext, NbdBytes.MetaContextData("vol0", "base:"));
        var full = await harness.Client.OptionAsync(NbdWire.OptSetMetaContext, NbdBytes.MetaContextData("vol0", "base:", NbdWire.BaseAllocation));

        Assert.Equal(NbdWire.RepAck, wildcard.Single().Type);
        Assert.Equal([NbdWire.RepMetaContext, NbdWire.RepAck], full.Select(r => r.Type));
        Assert.NotEqual(0u, BinaryPrimitives.ReadUInt32BigEndian(full[0].Data));
        Assert.Equal("base:allocation", full[0].Text[4..]);
    }

    [Fact]
    public async Task AMetaContextSelectedForAnotherExportDoesNotAllowBlockStatus()
    {
        var catalog = new TestExportCatalog().Add("vol0", new MemoryBlockDevice(Size)).Add("vol1", new MemoryBlockDevice(Size));
        await using var harness = new NbdSessionHarness(catalog);
        await harness.Client.OpenAsync();
        await harness.Client.OptionAsync(NbdWire.OptStructuredReply);
        await harness.Client.OptionAsync(NbdWire.OptSetMetaContext, NbdBytes.MetaContextData("vol1", NbdWire.BaseAllocation));
        Assert.Equal(NbdWire.RepAck, (await harness.Client.OptionAsync(NbdWire.OptGo, NbdBytes.InfoData("vol0")))[^1].Type);

        var reply = await harness.Client.RequestAsync(NbdWire.CmdBlockStatus, 0, 4096);

        Assert.Equal(NbdWire.EInval, reply.ErrorValue);
    }

    [Fact]
    public async Task ADeviceWithoutBlockStatusOffersNoMetaContext()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size, DeviceFeatures.AllWritable & ~DeviceFeatures.BlockStatus));
        await harness.Client.OpenAsync();
        await harness.Client.OptionAsync(NbdWire.OptStructuredReply);

        var listed = await harness.Client.OptionAsync(NbdWire.OptListMetaContext, NbdBytes.MetaContextData("vol0"));
        var selected = await harness.Client.OptionAsync(NbdWire.OptSetMetaContext, NbdBytes.MetaContextData("vol0", NbdWire.BaseAllocation));

        Assert.Equal(NbdWire.RepAck, listed.Single().Type);
        Assert.Equal(NbdWire.RepAck, selected.Single().Type);
    }

    public static TheoryData<string> FlagCases() => ["writable", "read-only", "bare", "structured"];

    [Theory]
    [MemberData(nameof(FlagCases))]
    public async Task TransmissionFlagsFollowTheDeviceFeatures(string name)
    {
        var (features, structured, expected) = name switch
        {
            "writable" => (DeviceFeatures.AllWritable, false,
                NbdWire.FlagHasFlags | NbdWire.FlagSendFlush | NbdWire.FlagSendFua | NbdWire.FlagSendTrim
                | NbdWire.FlagSendWriteZeroes | NbdWire.FlagCanMultiConn | NbdWire.FlagSendCache),
            "read-only" => (DeviceFeatures.AllWritable | DeviceFeatures.ReadOnly, false,
                NbdWire.FlagHasFlags | NbdWire.FlagReadOnly | NbdWire.FlagSendFlush | NbdWire.FlagSendFua
                | NbdWire.FlagCanMultiConn | NbdWire.FlagSendCache),
            "bare" => (DeviceFeatures.None, false, NbdWire.FlagHasFlags),
            "structured" => (DeviceFeatures.Flush, true, NbdWire.FlagHasFlags | NbdWire.FlagSendFlush | NbdWire.FlagSendDf),
            _ => throw new ArgumentOutOfRangeException(nameof(name)),
        };
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size, features));

        var export = await harness.Client.StartAsync(structured: structured);

        Assert.Equal(expected, export.Flags);
    }

    [Fact]
    public async Task AClientThatClosesBetweenOptionsEndsTheSessionCleanly()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size));
        await harness.Client.OpenAsync();
        await harness.Client.OptionAsync(NbdWire.OptList);

        await harness.Client.CloseAsync();

        Assert.Equal(NbdConnectionEndReason.ClientClosed, await harness.EndedAsync());
    }

    [Theory]
    [InlineData(2)]
    [InlineData(10)]
    [InlineData(20)]
    public async Task AClientThatVanishesInsideAMessageEndsTheSessionAsTruncated(int bytesSent)
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size));
        await harness.Client.ReadGreetingAsync();
        var flagsAndGo = NbdBytes.ClientFlags(NbdWire.ClientFlagFixedNewstyle).Concat(NbdBytes.Option(NbdWire.OptGo, NbdBytes.InfoData("vol0"))).ToArray();

        await harness.Client.SendAsync(flagsAndGo[..bytesSent]);
        await harness.Client.CloseAsync();

        Assert.Equal(NbdConnectionEndReason.TruncatedMessage, await harness.EndedAsync());
        Assert.Contains(harness.Logger.Entries, e => e.Message.Contains("TruncatedMessage", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ABadOptionMagicEndsTheConnection()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size));
        await harness.Client.OpenAsync();

        await harness.Client.SendAsync(NbdBytes.Option(NbdWire.OptList, magic: 0x1234));

        Assert.True(await harness.Client.ServerClosedAsync());
        Assert.Equal(NbdConnectionEndReason.InvalidMagic, await harness.EndedAsync());
    }

    [Fact]
    public async Task OptionsArrivingOneBytePerWriteAreUnderstood()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size));
        await harness.Client.ReadGreetingAsync();

        await harness.Client.SendBytePerFlushAsync(NbdBytes.ClientFlags(NbdWire.ClientFlagFixedNewstyle | NbdWire.ClientFlagNoZeroes));
        await harness.Client.SendBytePerFlushAsync(NbdBytes.Option(NbdWire.OptGo, NbdBytes.InfoData("vol0")));

        var replies = new List<OptionReply>();
        do
        {
            replies.Add(await harness.Client.ReadOptionReplyAsync());
        }
        while (replies[^1].Type == NbdWire.RepInfo);

        Assert.Equal(NbdWire.RepAck, replies[^1].Type);
        await harness.Client.AssertWorksAsync();
    }

    [Fact]
    public async Task ShutdownDuringTheHandshakeClosesAnIdleConnection()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size));
        await harness.Client.OpenAsync();
        await harness.Client.OptionAsync(NbdWire.OptList);

        harness.Session.BeginShutdown();

        Assert.Equal(NbdConnectionEndReason.ServerShutdown, await harness.EndedAsync());
    }

    [Fact]
    public async Task AClientThatNeverChoosesAnExportIsDisconnectedAfterTheHandshakeTimeout()
    {
        var options = new NbdServerOptions { HandshakeTimeout = TimeSpan.FromMilliseconds(200) };
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size), options);
        await harness.Client.OpenAsync();
        await harness.Client.OptionAsync(NbdWire.OptList);

        Assert.True(await harness.Client.ServerClosedAsync());
        Assert.Equal(NbdConnectionEndReason.HandshakeTimeout, await harness.EndedAsync());
    }

    [Fact]
    public async Task TheHandshakeTimeoutDoesNotApplyOnceTransmissionBegan()
    {
        // Long enough for the handshake to finish on a busy machine, short enough to be passed by the wait.
        var options = new NbdServerOptions { HandshakeTimeout = TimeSpan.FromSeconds(1) };
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size), options);
        await harness.Client.StartAsync();

        await Task.Delay(1500);

        await harness.Client.AssertWorksAsync();
        Assert.False(harness.Run.IsCompleted);
    }
}

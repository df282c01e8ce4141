using Replicator.Core.Devices;
using Replicator.Protocol.Nbd;
using Replicator.Protocol.Tests.Nbd.Support;

namespace Replicator.Protocol.Tests.Nbd;

/// <summary>
/// Each bad request gets the error the spec names, one log line, no change to the device, and the
/// connection keeps working afterwards.
/// </summary>
public class NbdBadRequestTests
{
    private const int Size = 1 << 20;
    private const uint Max = NbdWire.MaximumBlockSize;

    private static readonly Dictionary<string, (byte[] Request, uint Expected)> Table = new()
    {
        ["read past the end"] = (NbdBytes.Request(NbdWire.CmdRead, Size - 512, 1024), NbdWire.EInval),
        ["read whose end overflows"] = (NbdBytes.Request(NbdWire.CmdRead, ulong.MaxValue - 100, 512), NbdWire.EInval),
        ["read over the maximum"] = (NbdBytes.Request(NbdWire.CmdRead, 0, Max + 1), NbdWire.EInval),
        ["write past the end"] = (NbdBytes.Request(NbdWire.CmdWrite, Size - 512, 1024, payload: Fill(1024)), NbdWire.ENoSpc),
        ["write whose end overflows"] = (NbdBytes.Request(NbdWire.CmdWrite, ulong.MaxValue - 100, 512, payload: Fill(512)), NbdWire.ENoSpc),
        ["write over the maximum"] = (NbdBytes.Request(NbdWire.CmdWrite, 0, Max + 512, payload: Fill((int)Max + 512)), NbdWire.EInval),
        ["write with NO_HOLE"] = (NbdBytes.Request(NbdWire.CmdWrite, 0, 512, NbdWire.CmdFlagNoHole, payload: Fill(512)), NbdWire.EInval),
        ["write with an unknown flag"] = (NbdBytes.Request(NbdWire.CmdWrite, 0, 512, 0x100, payload: Fill(512)), NbdWire.EInval),
        ["write zeroes past the end"] = (NbdBytes.Request(NbdWire.CmdWriteZeroes, Size, 512), NbdWire.ENoSpc),
        ["write zeroes with FAST_ZERO"] = (NbdBytes.Request(NbdWire.CmdWriteZeroes, 0, 512, NbdWire.CmdFlagFastZero), NbdWire.EInval),
        ["trim past the end"] = (NbdBytes.Request(NbdWire.CmdTrim, Size, 512), NbdWire.EInval),
        ["read with DF and simple replies"] = (NbdBytes.Request(NbdWire.CmdRead, 0, 512, NbdWire.CmdFlagDf), NbdWire.EInval),
        ["read with REQ_ONE"] = (NbdBytes.Request(NbdWire.CmdRead, 0, 512, NbdWire.CmdFlagReqOne), NbdWire.EInval),
        ["unknown command"] = (NbdBytes.Request(42, 0, 512), NbdWire.EInval),
        ["flush with an offset"] = (NbdBytes.Request(NbdWire.CmdFlush, 512, 0), NbdWire.EInval),
        ["block status without a meta context"] = (NbdBytes.Request(NbdWire.CmdBlockStatus, 0, 512), NbdWire.EInval),
        ["cache past the end"] = (NbdBytes.Request(NbdWire.CmdCache, Size, 512), NbdWire.EInval),
    };

    public static TheoryData<string> Cases() => [.. Table.Keys];

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task ABadRequestIsRefusedAndTheConnectionGoesOn(string name)
    {
        var device = new MemoryBlockDevice(Size);
        await using var harness = NbdSessionHarness.Serving(device);
        await harness.Client.StartAsync();
        var (request, expected) = Table[name];

        await harness.Client.SendAsync(request);
        var reply = await harness.Client.ReadReplyAsync();

        Assert.Equal((1ul, expected), (reply.Handle, reply.ErrorValue));
        Assert.Empty(reply.Payload);
        Assert.Empty(device.Calls);
        NbdBytes.AssertZero(device.Snapshot());
        Assert.Single(harness.RefusalLog);
        Assert.Contains(NbdErrors.ErrorName(expected), harness.RefusalLog[0], StringComparison.Ordinal);
        await harness.Client.AssertWorksAsync();
    }

    [Fact]
    public async Task WithStructuredRepliesARefusalIsAnErrorChunkWithAMessage()
    {
        await using var harness = NbdSessionHarness.Serving(new MemoryBlockDevice(Size));
        await harness.Client.StartAsync(structured: true);

        var reply = await harness.Client.RequestAsync(NbdWire.CmdRead, Size, 512, NbdWire.CmdFlagDf);

        Assert.True(reply.Structured);
        Assert.Equal(NbdWire.ReplyTypeError, reply.Type);
        Assert.Equal(NbdWire.EInval, reply.ErrorValue);
        Assert.Contains("beyond the end", reply.ErrorMessage, StringComparison.Ordinal);
        await harness.Client.AssertWorksAsync();
    }

    [Theory]
    [InlineData(NbdWire.CmdWrite)]
    [InlineData(NbdWire.CmdTrim)]
    [InlineData(NbdWire.CmdWriteZeroes)]
    public async Task WritingToAReadOnlyExportIsNotPermitted(ushort command)
    {
        var device = new MemoryBlockDevice(Size, DeviceFeatures.AllWritable | DeviceFeatures.ReadOnly);
        await using var harness = NbdSessionHarness.Serving(device);
        await harness.Client.StartAsync();

        var reply = await harness.Client.RequestAsync(
            command, 0, 512, payload: command == NbdWire.CmdWrite ? Fill(512) : null);

        Assert.Equal(NbdWire.EPerm, reply.ErrorValue);
        Assert.Empty(device.Calls);
        NbdBytes.AssertZero(device.Snapshot());
        var read = await harness.Client.RequestAsync(NbdWire.CmdRead, 0, 512, handle: 2);
        Assert.Equal(0u, read.ErrorValue);
    }

    [Theory]
    [InlineData(1u, 512u)]
    [InlineData(0u, 100u)]
    public async Task UnalignedRequestsAreRefusedOnlyWhenTheClientAgreedToBlockSizes(uint offset, uint length)
    {
        var device = new MemoryBlockDevice(Size);
        await using var strict = NbdSessionHarness.Serving(device);
        await using var lenient = NbdSessionHarness.Serving(new MemoryBlockDevice(Size));
        await strict.Client.StartAsync(blockSizes: true);
        await lenient.Client.StartAsync();

        var refused = await strict.Client.RequestAsync(NbdWire.CmdWrite, offset, length, payload: Fill((int)length));
        var accepted = await lenient.Client.RequestAsync(NbdWire.CmdWrite, offset, length, payload: Fill((int)length));

        Assert.Equal(NbdWire.EInval, refused.ErrorValue);
        Assert.Equal(0u, accepted.ErrorValue);
        NbdBytes.AssertZero(device.Snapshot());
        await strict.Client.AssertWorksAsync();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task WriteZeroesOverTheMaximumIsDoneWhetherOrNotTheClientAgreedToBlockSizes(bool blockSizes)
    {
        // The maximum block size limits payloads; WRITE_ZEROES carries none (as nbdkit, every 32-bit length goes).
        var size = (int)Max * 2;
        var device = new MemoryBlockDevice(size);
        await using var harness = NbdSessionHarness.Serving(device);
        await harness.Client.StartAsync(blockSizes: blockSizes);
        var written = await harness.Client.RequestAsync(NbdWire.CmdWrite, Max, 4096, payload: Fill(4096));
        Assert.Equal(0u, written.ErrorValue);

        var zeroed = await harness.Client.RequestAsync(NbdWire.CmdWriteZeroes, 0, Max + 4096);

        Assert.Equal(0u, zeroed.ErrorValue);
        NbdBytes.AssertZero(device.Snapshot());
    }

    [Fact]
    public async Task AWriteTooLargeToSkipEndsTheConnection()
    {
        var device = new MemoryBlockDevice(Size);
        await using var harness = NbdSessionHarness.Serving(device);
        await harness.Client.StartAsync();

        await harness.Client.SendRequestAsync(NbdWire.CmdWrite, 0, NbdWire.MaxSkippableWriteLength + 1);

        Assert.True(await harness.Client.ServerClosedAsync());
        Assert.Equal(NbdConnectionEndReason.OversizedRequest, await harness.EndedAsync());
        Assert.Empty(device.Calls);
    }

    [Fact]
    public async Task ABadRequestMagicEndsTheConnection()
    {
        var device = new MemoryBlockDevice(Size);
        await using var harness = NbdSessionHarness.Serving(device);
        await harness.Client.StartAsync();

        await harness.Client.SendAsync(NbdBytes.Request(NbdWire.CmdWrite, 0, 512, payload: Fill(512), magic: NbdWire.SimpleReplyMagic));

        Assert.True(await harness.Client.ServerClosedAsync());
        Assert.Equal(NbdConnectionEndReason.InvalidMagic, await harness.EndedAsync());
        Assert.Empty(device.Calls);
        Assert.Contains(harness.Logger.Entries, e => e.Message.Contains("magic 0x67446698", StringComparison.Ordinal));
    }

    public static TheoryData<string, ushort, uint> DeviceErrors() => new()
    {
        { nameof(StorageError.Io), NbdWire.CmdRead, NbdWire.EIo },
        { nameof(StorageError.NoSpace), NbdWire.CmdWrite, NbdWire.ENoSpc },
        { nameof(StorageError.OutOfRange), NbdWire.CmdWrite, NbdWire.ENoSpc },
        { nameof(StorageError.OutOfRange), NbdWire.CmdWriteZeroes, NbdWire.ENoSpc },
        { nameof(StorageError.OutOfRange), NbdWire.CmdRead, NbdWire.EInval },
        { nameof(StorageError.OutOfRange), NbdWire.CmdTrim, NbdWire.EInval },
        { nameof(StorageError.InvalidArgument), NbdWire.CmdCache, NbdWire.EInval },
        { nameof(StorageError.NotPermitted), NbdWire.CmdWrite, NbdWire.EPerm },
        { nameof(StorageError.NotSupported), NbdWire.CmdTrim, NbdWire.EInval },
        { nameof(StorageError.Shutdown), NbdWire.CmdFlush, NbdWire.EShutdown },
        { nameof(StorageError.Io), NbdWire.CmdBlockStatus, NbdWire.EIo },
        { "bug", NbdWire.CmdRead, NbdWire.EIo },
    };

    [Theory]
    [MemberData(nameof(DeviceErrors))]
    public async Task ADeviceFailureIsAnsweredWithItsErrorAndMessage(string failure, ushort command, uint expected)
    {
        var device = new MemoryBlockDevice(Size)
        {
            Fault = (_, _) => failure == "bug"
                ? new InvalidOperationException("a bug")
                : new BlockDeviceException(Enum.Parse<StorageError>(failure), $"the device says {failure}"),
        };
        await using var harness = NbdSessionHarness.Serving(device);
        await harness.Client.StartAsync(structured: true, baseAllocation: true);

        var reply = await harness.Client.RequestAsync(
            command, 0, command == NbdWire.CmdFlush ? 0u : 512u, payload: command == NbdWire.CmdWrite ? Fill(512) : null);

        Assert.Equal(NbdWire.ReplyTypeError, reply.Type);
        Assert.Equal(expected, reply.ErrorValue);
        Assert.Equal(failure == "bug" ? "internal server error" : $"the device says {failure}", reply.ErrorMessage);
        NbdBytes.AssertZero(device.Snapshot());
        device.Fault = null;
        await harness.Client.AssertWorksAsync();
    }

    [Fact]
    public async Task ADeviceFailureWithSimpleRepliesCarriesOnlyTheError()
    {
        var device = new MemoryBlockDevice(Size) { Fault = (_, _) => new BlockDeviceException(StorageError.Io, "disk on fire") };
        await using var harness = NbdSessionHarness.Serving(device);
        await harness.Client.StartAsync();

        var reply = await harness.Client.RequestAsync(NbdWire.CmdRead, 0, 512);

        Assert.False(reply.Structured);
        Assert.Equal(NbdWire.EIo, reply.ErrorValue);
        Assert.Empty(reply.Payload);
        Assert.Single(harness.Logger.Messages(21));
    }

    private static byte[] Fill(int length) => Enumerable.Repeat((byte)0xEE, length).ToArray();
}

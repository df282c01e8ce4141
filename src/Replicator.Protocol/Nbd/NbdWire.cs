namespace Replicator.Protocol.Nbd;

/// <summary>
/// Every number the NBD protocol puts on the wire, and the limits this server chooses, in one place
/// (the upstream <c>doc/proto.md</c>; nbdkit keeps the same list in <c>common/protocol/nbd-protocol.h</c>).
/// All multi-byte fields are big-endian.
/// </summary>
internal static class NbdWire
{
    // Magic numbers.
    public const ulong InitPassword = 0x4e42444d41474943; // "NBDMAGIC"
    public const ulong OptionMagic = 0x49484156454F5054; // "IHAVEOPT"
    public const ulong OptionReplyMagic = 0x0003e889045565a9;
    public const uint RequestMagic = 0x25609513;
    public const uint SimpleReplyMagic = 0x67446698;
    public const uint StructuredReplyMagic = 0x668e33ef;

    // Handshake flags (server, 16 bits).
    public const ushort FlagFixedNewstyle = 1 << 0;
    public const ushort FlagNoZeroes = 1 << 1;

    // Client flags (32 bits).
    public const uint ClientFlagFixedNewstyle = 1 << 0;
    public const uint ClientFlagNoZeroes = 1 << 1;
    public const uint KnownClientFlags = ClientFlagFixedNewstyle | ClientFlagNoZeroes;

    // Option types.
    public const uint OptExportName = 1;
    public const uint OptAbort = 2;
    public const uint OptList = 3;
    public const uint OptStartTls = 5;
    public const uint OptInfo = 6;
    public const uint OptGo = 7;
    public const uint OptStructuredReply = 8;
    public const uint OptListMetaContext = 9;
    public const uint OptSetMetaContext = 10;

    // Option reply types. Errors have bit 31 set.
    public const uint RepAck = 1;
    public const uint RepServer = 2;
    public const uint RepInfo = 3;
    public const uint RepMetaContext = 4;
    public const uint RepFlagError = 1u << 31;
    public const uint RepErrUnsup = RepFlagError | 1;
    public const uint RepErrPolicy = RepFlagError | 2;
    public const uint RepErrInvalid = RepFlagError | 3;
    public const uint RepErrPlatform = RepFlagError | 4;
    public const uint RepErrTlsReqd = RepFlagError | 5;
    public const uint RepErrUnknown = RepFlagError | 6;
    public const uint RepErrShutdown = RepFlagError | 7;
    public const uint RepErrBlockSizeReqd = RepFlagError | 8;
    public const uint RepErrTooBig = RepFlagError | 9;

    // Information types in NBD_OPT_INFO / NBD_OPT_GO.
    public const ushort InfoExport = 0;
    public const ushort InfoName = 1;
    public const ushort InfoDescription = 2;
    public const ushort InfoBlockSize = 3;

    // Transmission flags (16 bits).
    public const ushort FlagHasFlags = 1 << 0;
    public const ushort FlagReadOnly = 1 << 1;
    public const ushort FlagSendFlush = 1 << 2;
    public const ushort FlagSendFua = 1 << 3;
    public const ushort FlagRotational = 1 << 4;
    public const ushort FlagSendTrim = 1 << 5;
    public const ushort FlagSendWriteZeroes = 1 << 6;
    public const ushort FlagSendDf = 1 << 7;
    public const ushort FlagCanMultiConn = 1 << 8;
    public const ushort FlagSendResize = 1 << 9;
    public const ushort FlagSendCache = 1 << 10;
    public const ushort FlagSendFastZero = 1 << 11;

    // Command types.
    public const ushort CmdRead = 0;
    public const ushort CmdWrite = 1;
    public const ushort CmdDisc = 2;
    public const ushort CmdFlush = 3;
    public const ushort CmdTrim = 4;
    public const ushort CmdCache = 5;
    public const ushort CmdWriteZeroes = 6;
    public const ushort CmdBlockStatus = 7;

    // Command flags.
    public const ushort CmdFlagFua = 1 << 0;
    public const ushort CmdFlagNoHole = 1 << 1;
    public const ushort CmdFlagDf = 1 << 2;
    public const ushort CmdFlagReqOne = 1 << 3;
    public const ushort CmdFlagFastZero = 1 << 4;

    // Structured reply flags and types. Error chunk types have bit 15 set.
    public const ushort ReplyFlagDone = 1 << 0;
    public const ushort ReplyTypeNone = 0;
    public const ushort ReplyTypeOffsetData = 1;
    public const ushort ReplyTypeOffsetHole = 2;
    public const ushort ReplyTypeBlockStatus = 5;
    public const ushort ReplyTypeErrorFlag = 1 << 15;
    public const ushort ReplyTypeError = (1 << 15) | 1;
    public const ushort ReplyTypeErrorOffset = (1 << 15) | 2;

    // base:allocation status flags.
    public const uint StateHole = 1 << 0;
    public const uint StateZero = 1 << 1;

    // Error values.
    public const uint Success = 0;
    public const uint EPerm = 1;
    public const uint EIo = 5;
    public const uint ENoMem = 12;
    public const uint EInval = 22;
    public const uint ENoSpc = 28;
    public const uint EOverflow = 75;
    public const uint ENotSup = 95;
    public const uint EShutdown = 108;

    // Message sizes.
    public const int GreetingLength = 8 + 8 + 2;
    public const int ClientFlagsLength = 4;
    public const int OptionHeaderLength = 8 + 4 + 4;
    public const int OptionReplyHeaderLength = 8 + 4 + 4 + 4;
    public const int ExportNameReplyLength = 8 + 2;
    public const int ExportNameReplyZeroes = 124;
    public const int RequestHeaderLength = 4 + 2 + 2 + 8 + 8 + 4;
    public const int SimpleReplyLength = 4 + 4 + 8;
    public const int StructuredReplyHeaderLength = 4 + 2 + 2 + 8 + 4;
    public const int OffsetDataPrefixLength = 8;
    public const int ErrorChunkPrefixLength = 4 + 2;
    public const int BlockDescriptorLength = 4 + 4;

    // Metadata contexts.
    public const string BaseNamespace = "base:";
    public const string BaseAllocation = "base:allocation";
    /// <summary>The id this server gives <c>base:allocation</c>; ids are opaque to clients.</summary>
    public const uint BaseAllocationContextId = 1;

    // Limits. Strings (names, messages) MUST NOT exceed 4096 bytes.
    public const int MaxStringLength = 4096;
    /// <summary>Option data above this is refused with NBD_REP_ERR_TOO_BIG and skipped, never buffered.</summary>
    public const int MaxOptionDataLength = 64 * 1024;
    public const uint MinimumBlockSize = 512;
    public const uint PreferredBlockSize = 4096;
    /// <summary>Largest READ/WRITE/CACHE (and WRITE_ZEROES, for clients that asked for sizes) served: 2^25.</summary>
    public const uint MaximumBlockSize = 32 * 1024 * 1024;
    /// <summary>A refused WRITE's payload is skipped up to this length; a longer one is a denial of service and ends the connection.</summary>
    public const uint MaxSkippableWriteLength = 2 * MaximumBlockSize;
    /// <summary>Most descriptors sent in one block status chunk; the spec lets a server answer less than was asked.</summary>
    public const int MaxBlockStatusDescriptors = 1024;
}

using Replicator.Core.Devices;

namespace Replicator.Protocol.Nbd;

/// <summary>What the handshake agreed on that decides which requests are valid.</summary>
/// <param name="TransmissionFlags">The flags sent to the client with the export.</param>
/// <param name="StructuredReplies">NBD_OPT_STRUCTURED_REPLY was acknowledged.</param>
/// <param name="BaseAllocation">base:allocation was selected for this export; BLOCK_STATUS is allowed.</param>
/// <param name="Alignment">
/// The minimum block size the client promised to honour by asking for NBD_INFO_BLOCK_SIZE in NBD_OPT_GO; 1 otherwise.
/// </param>
internal readonly record struct NbdTransmissionPolicy(
    ushort TransmissionFlags, bool StructuredReplies, bool BaseAllocation, uint Alignment)
{
    public bool Has(ushort flag) => (TransmissionFlags & flag) != 0;

    /// <summary>
    /// The transmission flags for a device: every command the device supports is exposed, commands that
    /// write are not offered on a read-only export, DF only with structured replies, and MULTI_CONN only
    /// when the device says a flush on one connection covers every other.
    /// </summary>
    public static ushort FlagsFor(DeviceFeatures features, bool structuredReplies)
    {
        var readOnly = features.HasFlag(DeviceFeatures.ReadOnly);
        var flags = NbdWire.FlagHasFlags;
        flags |= readOnly ? NbdWire.FlagReadOnly : (ushort)0;
        flags |= features.HasFlag(DeviceFeatures.Flush) ? NbdWire.FlagSendFlush : (ushort)0;
        flags |= features.HasFlag(DeviceFeatures.Fua) ? NbdWire.FlagSendFua : (ushort)0;
        flags |= features.HasFlag(DeviceFeatures.Trim) && !readOnly ? NbdWire.FlagSendTrim : (ushort)0;
        flags |= features.HasFlag(DeviceFeatures.WriteZeroes) && !readOnly ? NbdWire.FlagSendWriteZeroes : (ushort)0;
        flags |= structuredReplies ? NbdWire.FlagSendDf : (ushort)0;
        flags |= features.HasFlag(DeviceFeatures.MultiConn) ? NbdWire.FlagCanMultiConn : (ushort)0;
        flags |= features.HasFlag(DeviceFeatures.Cache) ? NbdWire.FlagSendCache : (ushort)0;
        return flags;
    }

    /// <summary>
    /// The minimum block size advertised for an export: 512, unless the size is not a multiple of it,
    /// in which case 1 so the client can still reach the last bytes.
    /// </summary>
    public static uint MinimumBlockSizeFor(long exportSize) =>
        exportSize % NbdWire.MinimumBlockSize == 0 ? NbdWire.MinimumBlockSize : 1;
}

/// <summary>The export the client chose, held for the transmission phase.</summary>
internal sealed record NbdNegotiatedExport(string Name, IExportAttachment Attachment, NbdTransmissionPolicy Policy);

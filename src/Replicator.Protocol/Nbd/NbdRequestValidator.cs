namespace Replicator.Protocol.Nbd;

/// <summary>
/// Decides whether a transmission request may reach the device, in the manner of nbdkit's
/// <c>validate_request</c>: one method, one answer per bad request, each the error value the spec names.
/// Whatever passes here is executed without further checks.
/// </summary>
internal static class NbdRequestValidator
{
    private const ushort KnownFlags =
        NbdWire.CmdFlagFua | NbdWire.CmdFlagNoHole | NbdWire.CmdFlagDf | NbdWire.CmdFlagReqOne | NbdWire.CmdFlagFastZero;

    /// <summary>Returns <see cref="NbdWire.Success"/>, or the error to reply with and why.</summary>
    public static uint Validate(in NbdRequest request, in NbdTransmissionPolicy policy, long exportSize, out string? reason)
    {
        var type = request.Type;
        if (type is not (NbdWire.CmdRead or NbdWire.CmdWrite or NbdWire.CmdFlush or NbdWire.CmdTrim
            or NbdWire.CmdCache or NbdWire.CmdWriteZeroes or NbdWire.CmdBlockStatus))
        {
            return Refuse(NbdWire.EInval, "unknown command", out reason);
        }

        if (InvalidFlags(request, policy) is { } flagProblem)
        {
            return Refuse(NbdWire.EInval, flagProblem, out reason);
        }

        if (policy.Has(NbdWire.FlagReadOnly) && type is NbdWire.CmdWrite or NbdWire.CmdTrim or NbdWire.CmdWriteZeroes)
        {
            return Refuse(NbdWire.EPerm, "the export is read-only", out reason);
        }

        if (MissingFeature(type, policy) is { } featureProblem)
        {
            return Refuse(NbdWire.EInval, featureProblem, out reason);
        }

        if (type == NbdWire.CmdFlush)
        {
            return request.Offset != 0 || request.Length != 0
                ? Refuse(NbdWire.EInval, "FLUSH must have offset and length zero", out reason)
                : Refuse(NbdWire.Success, null, out reason);
        }

        if (type == NbdWire.CmdBlockStatus && request.Length == 0)
        {
            return Refuse(NbdWire.EInval, "BLOCK_STATUS of zero bytes", out reason);
        }

        // The maximum bounds what a request or reply carries (and CACHE, which reads ahead). TRIM and
        // WRITE_ZEROES carry nothing, and nbdkit accepts them at any 32-bit length: so do we.
        if (request.Length > NbdWire.MaximumBlockSize && type is NbdWire.CmdRead or NbdWire.CmdWrite or NbdWire.CmdCache)
        {
            return Refuse(NbdWire.EInval, "length exceeds the maximum block size", out reason);
        }

        if (request.Offset % policy.Alignment != 0 || request.Length % policy.Alignment != 0)
        {
            return Refuse(NbdWire.EInval, "offset or length is not a multiple of the minimum block size", out reason);
        }

        var size = (ulong)Math.Max(exportSize, 0);
        if (request.Offset > size || request.Length > size - request.Offset)
        {
            return NbdErrors.IsWrite(type)
                ? Refuse(NbdWire.ENoSpc, "the request ends beyond the end of the export", out reason)
                : Refuse(NbdWire.EInval, "the request ends beyond the end of the export", out reason);
        }

        return Refuse(NbdWire.Success, null, out reason);
    }

    private static string? InvalidFlags(in NbdRequest request, in NbdTransmissionPolicy policy)
    {
        if ((request.Flags & ~KnownFlags) != 0)
        {
            return "unknown command flag";
        }

        if (request.HasFlag(NbdWire.CmdFlagFua) && !policy.Has(NbdWire.FlagSendFua))
        {
            return "FUA was not negotiated";
        }

        if (request.HasFlag(NbdWire.CmdFlagNoHole) && request.Type != NbdWire.CmdWriteZeroes)
        {
            return "NO_HOLE is only valid on WRITE_ZEROES";
        }

        if (request.HasFlag(NbdWire.CmdFlagDf) && (request.Type != NbdWire.CmdRead || !policy.Has(NbdWire.FlagSendDf)))
        {
            return "DF is only valid on READ with structured replies";
        }

        if (request.HasFlag(NbdWire.CmdFlagReqOne) && request.Type != NbdWire.CmdBlockStatus)
        {
            return "REQ_ONE is only valid on BLOCK_STATUS";
        }

        return request.HasFlag(NbdWire.CmdFlagFastZero) ? "FAST_ZERO was not negotiated" : null;
    }

    private static string? MissingFeature(ushort type, in NbdTransmissionPolicy policy) => type switch
    {
        NbdWire.CmdFlush when !policy.Has(NbdWire.FlagSendFlush) => "FLUSH was not negotiated",
        NbdWire.CmdTrim when !policy.Has(NbdWire.FlagSendTrim) => "TRIM was not negotiated",
        NbdWire.CmdWriteZeroes when !policy.Has(NbdWire.FlagSendWriteZeroes) => "WRITE_ZEROES was not negotiated",
        NbdWire.CmdCache when !policy.Has(NbdWire.FlagSendCache) => "CACHE was not negotiated",
        NbdWire.CmdBlockStatus when !policy.BaseAllocation => "BLOCK_STATUS without a selected metadata context",
        _ => null,
    };

    private static uint Refuse(uint error, string? why, out string? reason)
    {
        reason = why;
        return error;
    }
}

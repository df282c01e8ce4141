namespace Replicator.Protocol.Nbd;

/// <summary>The shapes of reply the transmission phase sends.</summary>
internal enum NbdReplyKind : byte
{
    /// <summary>A simple reply without payload: success, or an error for any request.</summary>
    Simple,
    /// <summary>A successful simple reply to READ, followed by the data.</summary>
    SimpleRead,
    /// <summary>The final NBD_REPLY_TYPE_OFFSET_DATA chunk of a READ.</summary>
    OffsetData,
    /// <summary>A lone NBD_REPLY_TYPE_NONE chunk: success without content.</summary>
    None,
    /// <summary>The final NBD_REPLY_TYPE_ERROR chunk, with a message.</summary>
    ErrorChunk,
    /// <summary>The final NBD_REPLY_TYPE_BLOCK_STATUS chunk; the buffer holds its formatted payload.</summary>
    BlockStatus,
}

/// <summary>
/// One reply waiting for the reply writer. It owns <see cref="Buffer"/> (rented from the shared array
/// pool) until it is written, and <see cref="AdmittedBytes"/> is what its request holds of the
/// connection's in-flight budget, given back once the reply is out.
/// </summary>
internal readonly record struct NbdPendingReply(
    NbdReplyKind Kind, ulong Handle, uint Error, ulong Offset, byte[]? Buffer, int Length, string? Message, long AdmittedBytes);

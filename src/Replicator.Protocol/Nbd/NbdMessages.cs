namespace Replicator.Protocol.Nbd;

/// <summary>The fixed part of a client option during the handshake.</summary>
internal readonly record struct NbdOptionHeader(uint Option, uint Length);

/// <summary>A transmission request header. A WRITE's <see cref="Length"/> bytes of payload follow it on the wire.</summary>
internal readonly record struct NbdRequest(ushort Flags, ushort Type, ulong Handle, ulong Offset, uint Length)
{
    public bool HasFlag(ushort flag) => (Flags & flag) != 0;

    /// <summary>Bytes of payload that follow this header on the wire.</summary>
    public uint PayloadLength => Type == NbdWire.CmdWrite ? Length : 0;
}

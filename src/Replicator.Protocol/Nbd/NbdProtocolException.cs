using System.Diagnostics.CodeAnalysis;

namespace Replicator.Protocol.Nbd;

/// <summary>A protocol violation that ends the connection; carries the reason the session records.</summary>
internal sealed class NbdProtocolException : Exception
{
    public NbdProtocolException(NbdConnectionEndReason reason, string message)
        : base(message)
    {
        Reason = reason;
    }

    public NbdConnectionEndReason Reason { get; }

    [DoesNotReturn]
    public static void Throw(NbdConnectionEndReason reason, string message) =>
        throw new NbdProtocolException(reason, message);

    [DoesNotReturn]
    public static void ThrowInvalidMagic(string what, ulong magic) =>
        throw new NbdProtocolException(NbdConnectionEndReason.InvalidMagic, $"{what} has magic 0x{magic:x}");
}

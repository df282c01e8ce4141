using System.Buffers.Binary;
using Replicator.Core.Hashing;
using Replicator.Core.Storage;

namespace Replicator.Core.Replication;

/// <summary>Where a replica's scrub stands, kept across restarts.</summary>
/// <param name="Position">The volume offset the running pass resumes from.</param>
/// <param name="PassStarted">When the running pass started; null when none runs.</param>
/// <param name="LastCompleted">When the last pass ended (or, before any, when scrubbing began for this replica): the schedule counts from it.</param>
/// <param name="Pass">What the running pass found so far.</param>
/// <param name="LastPass">What the last completed pass found.</param>
internal sealed record ScrubState(long Position, DateTimeOffset? PassStarted, DateTimeOffset LastCompleted, bool Paused, ScrubFindings Pass, ScrubFindings LastPass)
{
    public static ScrubState Fresh(DateTimeOffset now) => new(0, null, now, false, default, default);
}

/// <summary>Bytes a pass has read and the damaged blocks it found, healed, and could not repair.</summary>
internal readonly record struct ScrubFindings(long ScannedBytes, long Detected, long Healed, long Unrecoverable)
{
    public ScrubFindings Add(ScrubFindings other) =>
        new(ScannedBytes + other.ScannedBytes, Detected + other.Detected, Healed + other.Healed, Unrecoverable + other.Unrecoverable);
}

/// <summary>
/// <see cref="ScrubState"/> on disk (<c>replicas/&lt;volume id&gt;/scrub.state</c>), written whole and atomically.
/// </summary>
/// <remarks>
/// <code>
/// "RPLSCRB\0"  u32 version  i64 position  i64 pass started (Unix ms, 0: none)  i64 last completed (Unix ms)  u32 flags (1: paused)
/// { i64 scanned  i64 detected  i64 healed  i64 unrecoverable } running pass, then last pass   u32 crc32c of all before it
/// </code>
/// Little-endian, 112 bytes. A missing or damaged file starts the schedule afresh: it costs a scrub pass, never data.
/// </remarks>
internal static class ScrubStateFile
{
    public const string FileName = "scrub.state";
    private const int Version = 1;
    private const int Length = 112;
    private static ReadOnlySpan<byte> Magic => "RPLSCRB\0"u8;

    public static void Write(IFileSystem files, string path, ScrubState state) => files.WriteAtomically(path, Serialize(state));

    /// <summary>The state in <paramref name="path"/>, or null when there is none or it is damaged (with why).</summary>
    public static ScrubState? TryRead(IFileSystem files, string path, out string? problem)
    {
        problem = null;
        if (!files.FileExists(path))
        {
            return null;
        }

        var bytes = files.ReadAllBytes(path);
        if (bytes.Length != Length || !bytes.AsSpan().StartsWith(Magic)
            || BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(Length - 4)) != Crc32C.Compute(bytes.AsSpan(0, Length - 4))
            || BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(8)) != Version)
        {
            problem = $"{path} is damaged or of another version";
            return null;
        }

        var span = bytes.AsSpan();
        var started = BinaryPrimitives.ReadInt64LittleEndian(span[20..]);
        return new ScrubState(
            BinaryPrimitives.ReadInt64LittleEndian(span[12..]),
            started == 0 ? null : DateTimeOffset.FromUnixTimeMilliseconds(started),
            DateTimeOffset.FromUnixTimeMilliseconds(BinaryPrimitives.ReadInt64LittleEndian(span[28..])),
            (BinaryPrimitives.ReadUInt32LittleEndian(span[36..]) & 1) != 0,
            ReadFindings(span[40..]),
            ReadFindings(span[72..]));
    }

    public static byte[] Serialize(ScrubState state)
    {
        var bytes = new byte[Length];
        var span = bytes.AsSpan();
        Magic.CopyTo(span);
        BinaryPrimitives.WriteInt32LittleEndian(span[8..], Version);
        BinaryPrimitives.WriteInt64LittleEndian(span[12..], state.Position);
        BinaryPrimitives.WriteInt64LittleEndian(span[20..], state.PassStarted?.ToUnixTimeMilliseconds() ?? 0);
        BinaryPrimitives.WriteInt64LittleEndian(span[28..], state.LastCompleted.ToUnixTimeMilliseconds());
        BinaryPrimitives.WriteUInt32LittleEndian(span[36..], state.Paused ? 1u : 0u);
        WriteFindings(span[40..], state.Pass);
        WriteFindings(span[72..], state.LastPass);
        BinaryPrimitives.WriteUInt32LittleEndian(span[(Length - 4)..], Crc32C.Compute(span[..(Length - 4)]));
        return bytes;
    }

    private static ScrubFindings ReadFindings(ReadOnlySpan<byte> span) => new(
        BinaryPrimitives.ReadInt64LittleEndian(span),
        BinaryPrimitives.ReadInt64LittleEndian(span[8..]),
        BinaryPrimitives.ReadInt64LittleEndian(span[16..]),
        BinaryPrimitives.ReadInt64LittleEndian(span[24..]));

    private static void WriteFindings(Span<byte> span, ScrubFindings findings)
    {
        BinaryPrimitives.WriteInt64LittleEndian(span, findings.ScannedBytes);
        BinaryPrimitives.WriteInt64LittleEndian(span[8..], findings.Detected);
        BinaryPrimitives.WriteInt64LittleEndian(span[16..], findings.Healed);
        BinaryPrimitives.WriteInt64LittleEndian(span[24..], findings.Unrecoverable);
    }
}

using System.Security.Cryptography;

namespace Replicator.Core.Replication;

/// <summary>
/// The generation identifiers of one replica, in the spirit of DRBD's current, bitmap and history
/// UUIDs. They are compared on reconnect (<see cref="SyncDecision.Decide"/>) to tell, with no admin
/// action, which replica is newer, whether the dirty bitmap covers the difference, and whether
/// the replicas were written independently (split brain). Immutable: each transition returns the
/// new identifiers, which the node writes durably (<see cref="ReplicaMetadataFile"/>) before it acts
/// on them.
/// </summary>
/// <param name="Current">Names the data set this replica holds. Changes when the replica starts writing without its peer.</param>
/// <param name="Bitmap">The <see cref="Current"/> this replica had when its dirty bitmap started recording: the dirty bitmap holds every change since that data set. 0 when no resync is owed.</param>
/// <param name="History0">The newest earlier data set this replica descends from (0 when none).</param>
/// <param name="History1">The one before <see cref="History0"/>.</param>
/// <remarks>
/// Two values are reserved. <see cref="Empty"/> (0) as <see cref="Current"/> marks a replica whose
/// data means nothing (a new or replaced disk, or one discarded by an admin): it receives a full
/// sync. <see cref="CreatedTogether"/> names the all-zero data set of a volume as it is created,
/// the same on both nodes, so two fresh replicas need no sync, and a replica created while its
/// peer was away resyncs it by bitmap alone.
/// </remarks>
internal readonly record struct GenerationIds(ulong Current, ulong Bitmap, ulong History0, ulong History1)
{
    public const ulong Empty = 0;
    public const ulong CreatedTogether = 4;

    /// <summary>The identifiers of a freshly created volume: all zeros, the same on both nodes.</summary>
    public static GenerationIds NewVolume => new(CreatedTogether, 0, 0, 0);

    /// <summary>The identifiers of a replica with no meaningful data.</summary>
    public static GenerationIds EmptyReplica => new(Empty, 0, 0, 0);

    public bool IsEmpty => Current == Empty;

    /// <summary>Whether <paramref name="id"/> is one of this replica's earlier data sets.</summary>
    public bool InHistory(ulong id) => id != 0 && (History0 == id || History1 == id);

    /// <summary>A random identifier that is neither reserved value.</summary>
    public static ulong NewId()
    {
        Span<byte> bytes = stackalloc byte[sizeof(ulong)];
        ulong id;
        do
        {
            RandomNumberGenerator.Fill(bytes);
            id = BitConverter.ToUInt64(bytes);
        }
        while (id is Empty or CreatedTogether);

        return id;
    }

    /// <summary>
    /// Called before this replica acknowledges its first write made without an up-to-date peer:
    /// the dirty bitmap starts recording against the current data set, and the replica takes a new
    /// one. A replica already recording (a non-zero <see cref="Bitmap"/>) keeps its identifiers: its
    /// bitmap still covers every change since the data set its peer holds.
    /// </summary>
    /// <param name="newId">The source of new identifiers (<see cref="NewId"/>; tests inject their own).</param>
    public GenerationIds BeginDegradedWrites(Func<ulong> newId)
    {
        ArgumentNullException.ThrowIfNull(newId);
        if (IsEmpty)
        {
            throw new InvalidOperationException("a replica without meaningful data cannot accept writes on its own");
        }

        if (Bitmap != 0)
        {
            return this;
        }

        var id = newId();
        for (var attempt = 0; id is Empty or CreatedTogether || id == Current || InHistory(id); attempt++)
        {
            if (attempt == 16)
            {
                throw new InvalidOperationException("the identifier source keeps returning reserved or used values");
            }

            id = newId();
        }

        return this with { Current = id, Bitmap = Current };
    }

    /// <summary>The resync this replica sent is complete: the bitmap's base data set becomes history.</summary>
    public GenerationIds CompleteResyncAsSource() =>
        Bitmap == 0 ? this : new GenerationIds(Current, 0, Bitmap, History0);

    /// <summary>
    /// The resync this replica received is complete: it now holds the source's data set, and takes
    /// the identifiers the source has once it completes too (<paramref name="source"/> as the source
    /// reported them at the end of the resync).
    /// </summary>
    public GenerationIds CompleteResyncAsTarget(GenerationIds source)
    {
        if (source.IsEmpty)
        {
            throw new ArgumentException("an empty replica cannot have been a resync source", nameof(source));
        }

        return source.CompleteResyncAsSource();
    }

    /// <summary>
    /// An admin named this replica as the side of a split brain whose changes are discarded.
    /// When both sides started recording from the same data set, this replica goes back to it and
    /// the next connection resyncs by bitmap (the union of both bitmaps covers both sides' changes);
    /// otherwise it becomes empty and receives a full sync. The discarded data set is kept in history.
    /// The node also marks its disk outdated (bitmap case) or inconsistent (full case).
    /// </summary>
    /// <exception cref="InvalidOperationException">The two replicas are not in split brain.</exception>
    public GenerationIds ResolveSplitBrainDiscardingThisSide(GenerationIds peer)
    {
        if (!SyncDecision.IsSplitBrain(this, peer, out var kind))
        {
            throw new InvalidOperationException($"replicas {this} and {peer} are not in split brain; nothing to resolve");
        }

        return kind == SyncKind.Bitmap
            ? new GenerationIds(Bitmap, 0, Current, History0)
            : Invalidate();
    }

    /// <summary>This replica's data no longer counts: it becomes empty and receives a full sync. Its data set is kept in history.</summary>
    public GenerationIds Invalidate() =>
        IsEmpty ? this with { Bitmap = 0 } : new GenerationIds(Empty, 0, Current, History0);

    public override string ToString() => $"{Current:X16}:{Bitmap:X16}:{History0:X16}:{History1:X16}";
}

namespace Replicator.Core.Replication;

/// <summary>
/// One 64-bit word of a <see cref="DirtyBitmap"/> after a change: word <see cref="Index"/> covers
/// regions <c>Index * 64</c> to <c>Index * 64 + 63</c>, bit <c>i</c> being region <c>Index * 64 + i</c>.
/// The caller hands these to <see cref="BitmapFile.WriteWords"/>, which writes exactly them.
/// </summary>
internal readonly record struct BitmapWord(long Index, ulong Value);

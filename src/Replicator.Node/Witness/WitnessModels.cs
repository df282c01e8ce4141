namespace Replicator.Node.Witness;

/// <summary>
/// A node asking for (or renewing) a volume's vote; generation ids as 16 hex digits. <see cref="Bitmap"/> is
/// the node's bitmap id (not 0 when it holds changes its peer lacks); a request without it counts as 0.
/// </summary>
internal sealed record VoteRequest(string? Node, string? Current, string? WritingAs, string? Bitmap = null);

/// <summary>A node whose pair is in sync gives the vote back, naming the data set the pair holds (<see cref="Generation"/>, 16 hex digits).</summary>
internal sealed record ReleaseRequest(string? Node, string? Generation = null);

internal sealed record VoteInfo(Guid Volume, string Holder, string Generation, DateTimeOffset ExpiresAt);

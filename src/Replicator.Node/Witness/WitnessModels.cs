namespace Replicator.Node.Witness;

/// <summary>A node asking for (or renewing) a volume's vote; generation ids as 16 hex digits.</summary>
internal sealed record VoteRequest(string? Node, string? Current, string? WritingAs);

internal sealed record ReleaseRequest(string? Node);

internal sealed record VoteInfo(Guid Volume, string Holder, string Generation, DateTimeOffset ExpiresAt);

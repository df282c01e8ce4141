namespace Replicator.Core.Storage;

/// <summary>
/// A file the node's storage depends on is damaged in a way no crash can cause (not a torn tail or a torn
/// slot): opening it would mean guessing what it said. Nothing was changed; the replica has to be brought
/// back from its peer (see docs/recovery.md: <c>replicator node rebuild</c>).
/// </summary>
public sealed class StorageDamagedException(string message, Exception? innerException = null) : IOException(message, innerException);

namespace Replicator.Core.Replication;

/// <summary>
/// What the node must do after a pairing event, in the order given. The machine does none of it:
/// <see cref="ReplicatedVolume"/> executes the actions on its replica, session and quorum, and the node
/// does what needs the peer connection (<see cref="RequestRepair"/>).
/// </summary>
internal abstract record PairingAction;

/// <summary>The event does not belong here (a peer request out of turn, an admin command that does not apply): refuse it with this text, change nothing.</summary>
internal sealed record Reject(string Why) : PairingAction;

/// <summary>The plan is refused: report <paramref name="Problem"/> and let the held writes go on as before.</summary>
internal sealed record Refuse(string Problem) : PairingAction;

/// <summary>A full sync: mark every allocated range of this replica in its bitmap (durably) before the exchange.</summary>
internal sealed record MarkAllocatedForFullSync : PairingAction;

/// <summary>A compare sync, this replica the target: mark the whole volume in its bitmap before the exchange.</summary>
internal sealed record MarkWholeVolume : PairingAction;

/// <summary>Write the replica's disk state (durably).</summary>
internal sealed record SetDiskState(ReplicaDiskState State) : PairingAction;

/// <summary>Add flags to the replica's metadata (durably).</summary>
internal sealed record SetFlags(ReplicaFlags Flags) : PairingAction;

/// <summary>
/// Attach a session for the connection (ending the one attached before): record the peer and whether the
/// replicas are in sync (<see cref="ReplicaFlags.ConnectedAndUpToDate"/>), let the held writes go, start
/// the owner's resync engine when the peer has a disk.
/// </summary>
internal sealed record Attach(bool LocalIsOwner, SyncRole Role, bool CompareFirst, bool InSync, bool LocalHasDisk, bool PeerHasDisk) : PairingAction;

/// <summary>The volume is paired and in sync: give back the witness's vote.</summary>
internal sealed record ReleaseQuorum : PairingAction;

/// <summary>End the attached session: stop the resync, clear <see cref="ReplicaFlags.ConnectedAndUpToDate"/>.</summary>
internal sealed record EndSession : PairingAction;

/// <summary>Clear the bitmap, retire the bitmap id, clear the flags a completed resync answers (durably); the role becomes none.</summary>
internal sealed record FinishResyncAsSource : PairingAction;

/// <summary>Clear the bitmap, take the source's data set, become up to date (durably); the role becomes none.</summary>
internal sealed record FinishResyncAsTarget(GenerationIds Source) : PairingAction;

/// <summary>Discard this side of a split brain: take the shared data set (or none), outdated or inconsistent (durably).</summary>
internal sealed record DiscardChanges(GenerationIds Peer) : PairingAction;

/// <summary>Stop all I/O to this replica's disk and record why (durably if the metadata can still be written).</summary>
internal sealed record DetachDisk(string Reason, bool Full) : PairingAction;

/// <summary>Take the disk back (rewriting metadata, bitmap and activity log, which must now succeed): inconsistent until a resync.</summary>
internal sealed record ReattachDisk : PairingAction;

/// <summary>Pair the volume again on the current connection (the node that dialed drives it), so the plan follows the new disk state.</summary>
internal sealed record RequestRepair(string Reason) : PairingAction;

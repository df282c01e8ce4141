using System.Text;
using Replicator.Core.Storage;
using Replicator.Core.Tests.Support.Faults;
using Replicator.Node.Witness;

namespace Replicator.Node.Tests.Witness;

/// <summary>
/// The witness's rules (issue 13, finding 6): an outdated node never gets the vote, not even from a
/// witness that lost its ledger.
/// </summary>
public sealed class WitnessBookTests
{
    private const string Ledger = "/w/votes.json";
    private const ulong InSync = 0x1111;
    private const ulong WrittenByB = 0xBBBB;
    private const ulong WrittenByA = 0xAAAA;
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(5);
    private static readonly Guid Volume = Guid.NewGuid();
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_witness_that_lost_its_ledger_does_not_give_the_vote_to_the_node_whose_peer_wrote_alone()
    {
        var book = NewBook(out _);
        book.Release(Volume, "a", InSync, T0);
        Assert.True(book.Request(Volume, "b", InSync, 0, WrittenByB, T0).Granted);

        // B writes alone as its new data set, then dies; the witness comes back on an empty disk.
        var lost = NewBook(out _);

        var a = lost.Request(Volume, "a", InSync, 0, WrittenByA, T0 + (2 * Lease));
        Assert.False(a.Granted);
        Assert.Contains("no record", a.Reason, StringComparison.Ordinal);
        Assert.False(lost.Request(Volume, "a", InSync, 0, InSync, T0 + (2 * Lease)).Granted);
        var b = lost.Request(Volume, "b", WrittenByB, InSync, WrittenByB, T0 + (3 * Lease));
        Assert.True(b.Granted, b.Reason);
        Assert.False(lost.Request(Volume, "a", InSync, 0, WrittenByA, T0 + (5 * Lease)).Granted);
    }

    [Fact]
    public void Once_the_pair_was_in_sync_either_node_holding_that_data_set_may_take_the_vote_and_only_one()
    {
        var book = NewBook(out _);
        Assert.False(book.Request(Volume, "a", InSync, 0, WrittenByA, T0).Granted);

        Assert.False(book.Release(Volume, "b", InSync, T0));
        var a = book.Request(Volume, "a", InSync, 0, WrittenByA, T0);
        var b = book.Request(Volume, "b", InSync, 0, WrittenByB, T0);

        Assert.True(a.Granted, a.Reason);
        Assert.False(b.Granted);
        Assert.Equal("a", b.Holder);
        Assert.Equal([Volume], book.Votes.Keys);
    }

    [Fact]
    public void After_the_holders_lease_ran_out_only_a_node_holding_its_data_set_takes_over()
    {
        var book = NewBook(out _);
        book.Release(Volume, "a", InSync, T0);
        Assert.True(book.Request(Volume, "a", InSync, 0, WrittenByA, T0).Granted);
        Assert.True(book.Request(Volume, "a", WrittenByA, InSync, WrittenByA, T0 + (Lease / 2)).Granted);

        Assert.False(book.Request(Volume, "b", InSync, 0, WrittenByB, T0 + Lease).Granted);
        var stale = book.Request(Volume, "b", InSync, 0, WrittenByB, T0 + (3 * Lease));
        Assert.False(stale.Granted);
        Assert.Contains("older", stale.Reason, StringComparison.Ordinal);
        Assert.True(book.Request(Volume, "b", WrittenByA, 0, WrittenByB, T0 + (3 * Lease)).Granted);
    }

    [Fact]
    public void A_release_never_lowers_what_another_nodes_vote_recorded()
    {
        var book = NewBook(out _);
        book.Release(Volume, "a", InSync, T0);
        Assert.True(book.Request(Volume, "b", InSync, 0, WrittenByB, T0).Granted);

        // A late release from a, in sync at the old data set, while and after b writes alone.
        Assert.False(book.Release(Volume, "a", InSync, T0 + (Lease / 2)));
        Assert.False(book.Release(Volume, "a", InSync, T0 + (3 * Lease)));

        Assert.False(book.Request(Volume, "a", InSync, 0, WrittenByA, T0 + (3 * Lease)).Granted);
        Assert.True(book.Release(Volume, "b", WrittenByB, T0 + (4 * Lease)));
        Assert.Empty(book.Votes);
        Assert.True(book.Request(Volume, "a", WrittenByB, 0, WrittenByA, T0 + (4 * Lease)).Granted);
    }

    [Fact]
    public void The_ledger_keeps_votes_and_in_sync_records_across_a_restart_and_a_held_lease_counts_as_renewed()
    {
        var other = Guid.NewGuid();
        var book = NewBook(out var fs);
        book.Release(Volume, "a", InSync, T0);
        book.Release(other, "a", InSync, T0);
        Assert.True(book.Request(other, "a", InSync, 0, WrittenByA, DateTimeOffset.UtcNow - (2 * Lease)).Granted);
        fs.PowerLoss();

        var restarted = new WitnessBook(Lease, fs, Ledger);

        Assert.True(restarted.Request(Volume, "b", InSync, 0, WrittenByB, DateTimeOffset.UtcNow).Granted);
        Assert.False(restarted.Request(other, "b", WrittenByA, 0, WrittenByB, DateTimeOffset.UtcNow).Granted);
    }

    [Fact]
    public void A_ledger_written_before_releases_were_recorded_still_loads()
    {
        var fs = new FaultFileSystem();
        fs.CreateDirectory("/w");
        fs.WriteAtomically(Ledger, Encoding.UTF8.GetBytes($$"""{ "{{Volume}}": { "holder": "a", "generation": {{WrittenByA}}, "expiresAt": "2026-01-01T00:00:00+00:00" } }"""));

        var book = new WitnessBook(Lease, fs, Ledger);

        Assert.Equal("a", book.Votes[Volume].Holder);
        Assert.False(book.Request(Volume, "b", InSync, 0, WrittenByB, DateTimeOffset.UtcNow + (3 * Lease)).Granted);
        Assert.True(book.Request(Volume, "b", WrittenByA, 0, WrittenByB, DateTimeOffset.UtcNow + (3 * Lease)).Granted);
    }

    [Fact]
    public void A_vote_the_ledger_could_not_store_is_neither_granted_nor_remembered()
    {
        var book = NewBook(out var fs);
        book.Release(Volume, "a", InSync, T0);
        fs.SpaceLeft = 0;

        var full = Assert.Throws<IOException>(() => book.Request(Volume, "a", InSync, 0, WrittenByA, T0));

        Assert.Equal(Errno.ENOSPC, full.HResult);
        Assert.Empty(book.Votes);
        fs.ClearFaults();
        Assert.True(book.Request(Volume, "b", InSync, 0, WrittenByB, T0).Granted);
    }

    private static WitnessBook NewBook(out FaultFileSystem fs)
    {
        fs = new FaultFileSystem();
        fs.CreateDirectory("/w");
        return new WitnessBook(Lease, fs, Ledger);
    }
}

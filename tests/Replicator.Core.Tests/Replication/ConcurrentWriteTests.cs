using Replicator.Core.Tests.Replication.Support;
using static Replicator.Core.Tests.Replication.Support.ReplicaData;

namespace Replicator.Core.Tests.Replication;

/// <summary>Invariant 2: concurrent overlapping changes through both nodes leave identical replicas, each sector holding a value written to it.</summary>
public sealed class ConcurrentWriteTests
{
    private const int Sector = 512;
    private const int Window = 2 * ReplicaSide.UnitSize;
    private const int Changes = 400;
    private const int InFlight = 32;

    [Theory]
    [InlineData(1, "A")]
    [InlineData(2, "A")]
    [InlineData(3, "B")]
    [InlineData(4, "B")]
    public async Task Overlapping_changes_through_both_nodes_leave_identical_replicas_holding_written_values(int seed, string preferred)
    {
        await using var pair = await ReplicaPair.ConnectedAsync(preferred: preferred);
        var jitter = new Jitter(seed);
        pair.A.Incoming = jitter.DelayAsync;
        pair.B.Incoming = jitter.DelayAsync;
        var random = new Random(seed);
        var changes = Enumerable.Range(0, Changes).Select(i => Planned.Random(random, i)).ToList();

        using var slots = new SemaphoreSlim(InFlight);
        var running = changes.Select(async change =>
        {
            await slots.WaitAsync();
            try
            {
                var side = change.ThroughA ? pair.A : pair.B;
                await side.Volume.ChangeAsync(change.Kind, change.Offset, change.Length, change.Data);
            }
            finally
            {
                slots.Release();
            }
        }).ToList();
        await Task.WhenAll(running).WaitAsync(TimeSpan.FromSeconds(30));

        var a = await pair.A.ReadLocalAsync(0, Window);
        var b = await pair.B.ReadLocalAsync(0, Window);
        Assert.True(a.AsSpan().SequenceEqual(b), $"the replicas differ first at byte {a.AsSpan().CommonPrefixLength(b)}");
        for (var sector = 0; sector < Window / Sector; sector++)
        {
            AssertHoldsAWrittenValue(a, sector, changes);
        }

        Assert.Equal(0, pair.A.Replica.OutOfSyncBytes);
        Assert.Equal(0, pair.B.Replica.OutOfSyncBytes);
    }

    private static void AssertHoldsAWrittenValue(byte[] replica, int sector, List<Planned> changes)
    {
        var start = (long)sector * Sector;
        var held = replica.AsSpan((int)start, Sector);
        var covering = changes.Where(c => c.Offset <= start && start < c.Offset + c.Length).ToList();
        if (covering.Count == 0 || covering.Any(c => c.Data is null))
        {
            if (held.IndexOfAnyExcept((byte)0) < 0)
            {
                return;
            }
        }

        foreach (var change in covering.Where(c => c.Data is not null))
        {
            if (held.SequenceEqual(change.Data.AsSpan((int)(start - change.Offset), Sector)))
            {
                return;
            }
        }

        Assert.Fail($"sector {sector} holds bytes none of its {covering.Count} changes wrote");
    }

    /// <summary>A change to make: sector-aligned, in a small window so that many overlap.</summary>
    private sealed record Planned(bool ThroughA, Change Kind, long Offset, int Length, byte[]? Data)
    {
        public static Planned Random(Random random, int index)
        {
            var offset = (long)random.Next(Window / Sector) * Sector;
            var length = (int)Math.Min(random.Next(1, 33) * Sector, Window - offset);
            var kind = random.Next(10) switch
            {
                < 7 => Change.Write,
                7 => Change.Trim,
                8 => Change.WriteZeroes,
                _ => Change.WriteZeroesNoHole,
            };
            byte[]? data = null;
            if (kind == Change.Write)
            {
                data = new byte[length];
                random.NextBytes(data);
                data[0] = (byte)index;
            }

            return new Planned(random.Next(2) == 0, kind, offset, length, data);
        }
    }

    /// <summary>Delays some requests a little on the receiving side, so that requests overtake each other as they would on a busy link.</summary>
    private sealed class Jitter(int seed)
    {
        private readonly Lock _lock = new();
        private readonly Random _random = new(seed);

        public async ValueTask DelayAsync(PeerRequest request, CancellationToken cancellationToken)
        {
            int roll;
            lock (_lock)
            {
                roll = _random.Next(8);
            }

            if (roll == 0)
            {
                await Task.Delay(1, cancellationToken);
            }
            else if (roll < 4)
            {
                await Task.Yield();
            }
        }
    }
}

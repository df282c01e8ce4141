namespace Replicator.Core.Tests.Faults;

/// <summary>
/// Which seeds a fault test runs, and for how long. By default a few fixed seeds, a few seconds in
/// all. <c>REPLICATOR_FAULT_SEED=N</c> replays one seed (the one a failure printed);
/// <c>REPLICATOR_FAULT_SECONDS=S</c> runs seed after seed from a random start for S seconds (a soak).
/// </summary>
internal static class FaultRuns
{
    public static IEnumerable<int> Seeds(params int[] defaults)
    {
        if (int.TryParse(Environment.GetEnvironmentVariable("REPLICATOR_FAULT_SEED"), out var replay))
        {
            yield return replay;
            yield break;
        }

        if (int.TryParse(Environment.GetEnvironmentVariable("REPLICATOR_FAULT_SECONDS"), out var seconds))
        {
            var until = DateTime.UtcNow.AddSeconds(seconds);
            for (var seed = Random.Shared.Next(1 << 20); DateTime.UtcNow < until; seed++)
            {
                yield return seed;
            }

            yield break;
        }

        foreach (var seed in defaults)
        {
            yield return seed;
        }
    }
}

using System.Globalization;
using System.Text.RegularExpressions;
using Replicator.IntegrationTests.Harness;

namespace Replicator.IntegrationTests.SingleNode;

/// <summary>kill -9 of a node in the middle of a write storm loses no acknowledged write.</summary>
[Collection(IntegrationCollection.Name)]
public sealed partial class CrashTests
{
    private const int Block = 4096;

    [Fact]
    public async Task Every_acknowledged_write_reads_back_after_a_kill_during_a_write_storm()
    {
        await using var node = await TestNode.StartAsync("2G");
        await node.CreateVolumeAsync("storm", "256M");
        var uri = node.Uri("storm");

        // Four qemu-io clients each write their own shuffled set of 4 KiB blocks, one pattern per
        // block; qemu-io prints a line for each write the node acknowledged.
        var random = new Random(42);
        var blocks = Enumerable.Range(0, (256 << 20) / Block).OrderBy(_ => random.Next()).Take(16000).ToArray();
        var writers = Enumerable.Range(0, 4).Select(w => RunningTool.Start("qemu-io",
            ["-f", "raw", .. blocks.Where((_, i) => i % 4 == w).SelectMany(b => new[] { "-c", $"write -P {PatternOf(b)} {(long)b * Block} {Block}" }), uri]))
            .ToArray();
        try
        {
            await WaitUntilAsync(() => writers.Sum(w => w.CountLines(l => l.StartsWith("wrote", StringComparison.Ordinal))) >= 2000, TimeSpan.FromSeconds(60));
            await node.KillAsync();
        }
        finally
        {
            foreach (var writer in writers)
            {
                await writer.WaitAsync(TimeSpan.FromSeconds(60));
            }
        }

        var results = await Task.WhenAll(writers.Select(w => w.WaitAsync(TimeSpan.FromSeconds(5))));

        var acknowledged = results.SelectMany(r => WroteLine().Matches(r.Stdout).Select(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) / Block)).ToList();
        Assert.True(acknowledged.Count >= 2000, $"only {acknowledged.Count} writes were acknowledged before the kill");
        Assert.True(acknowledged.Count < blocks.Length, "the storm finished before the kill; the test proved nothing");

        await node.RestartAsync();
        foreach (var chunk in acknowledged.Chunk(2000))
        {
            var check = await ExternalTool.RunAsync("qemu-io",
                ["-f", "raw", .. chunk.SelectMany(b => new[] { "-c", $"read -P {PatternOf(b)} {b * Block} {Block}" }), uri], TimeSpan.FromMinutes(2));
            Assert.True(check.ExitCode == 0, check.Describe());
            Assert.DoesNotContain("Pattern verification failed", check.Stdout);
            Assert.Equal(chunk.Length, ReadLine().Matches(check.Stdout).Count);
        }
    }

    private static int PatternOf(long block) => (int)(block % 250) + 1;

    private static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"the condition did not hold within {timeout.TotalSeconds} s");
            await Task.Delay(20);
        }
    }

    [GeneratedRegex(@"wrote \d+/\d+ bytes at offset (\d+)")]
    private static partial Regex WroteLine();

    [GeneratedRegex(@"read \d+/\d+ bytes at offset (\d+)")]
    private static partial Regex ReadLine();
}

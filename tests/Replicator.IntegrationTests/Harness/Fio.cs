using System.Text.Json;

namespace Replicator.IntegrationTests.Harness;

/// <summary>Runs fio's NBD engine against an export and reads its JSON report.</summary>
public static class Fio
{
    public static async Task<FioResult> RunAsync(string uri, string workDirectory, string name, params string[] options)
    {
        var args = new List<string>
        {
            "--name=" + name, "--ioengine=nbd", "--uri=" + uri, "--output-format=json",
            "--directory=" + workDirectory, "--group_reporting=1",
        };
        args.AddRange(options);
        var result = await ExternalTool.RunAsync("fio", args, TimeSpan.FromMinutes(3));
        // The report is the JSON object that starts a line; a fio that failed (its connection died at the start)
        // may print a broken one or none, and counts as a job with an error.
        var start = result.Stdout.StartsWith('{') ? 0 : result.Stdout.IndexOf("\n{", StringComparison.Ordinal) + 1;
        JsonDocument? parsed = null;
        try
        {
            parsed = start >= 0 && (start > 0 || result.Stdout.StartsWith('{')) ? JsonDocument.Parse(result.Stdout[start..]) : null;
        }
        catch (JsonException)
        {
        }

        if (parsed is null)
        {
            Assert.True(result.ExitCode != 0, $"fio succeeded but printed no JSON report: {result.Describe()}");
            return new FioResult(result.ExitCode, Errors: -1, WrittenBytes: 0, ReadBytes: 0, result.Describe());
        }

        using var json = parsed;
        try
        {
            var job = json.RootElement.GetProperty("jobs")[0];
            return new FioResult(
                ExitCode: result.ExitCode,
                Errors: job.GetProperty("error").GetInt32(),
                WrittenBytes: job.GetProperty("write").GetProperty("io_bytes").GetInt64(),
                ReadBytes: job.GetProperty("read").GetProperty("io_bytes").GetInt64(),
                Output: result.Describe())
            {
                LongestIo = TimeSpan.FromTicks(Math.Max(LongestNs(job, "write"), LongestNs(job, "read")) / 100),
            };
        }
        catch (Exception e) when (result.ExitCode != 0 && e is FormatException or InvalidOperationException or KeyNotFoundException or IndexOutOfRangeException)
        {
            // A report cut short by the failure: the job failed, whatever it holds.
            return new FioResult(result.ExitCode, Errors: -1, WrittenBytes: 0, ReadBytes: 0, result.Describe());
        }
    }

    private static long LongestNs(JsonElement job, string direction) =>
        job.GetProperty(direction).TryGetProperty("lat_ns", out var latency) && latency.TryGetProperty("max", out var max) ? max.GetInt64() : 0;
}

/// <param name="Errors">fio's error number for the job (0: none).</param>
public sealed record FioResult(int ExitCode, int Errors, long WrittenBytes, long ReadBytes, string Output)
{
    /// <summary>The longest time one I/O took, submission to completion, reads or writes.</summary>
    public TimeSpan LongestIo { get; init; }
}

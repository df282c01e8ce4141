using System.Globalization;

namespace Replicator.IntegrationTests.Harness;

/// <summary>
/// Real I/O errors in a running node from outside, with libfiu (Debian's fiu-utils): the node runs under
/// <c>fiu-run -x</c>, whose preloaded library wraps the POSIX I/O calls, and <c>fiu-ctrl</c> makes them fail
/// (with the errno given) or work again while the node runs. Only the process started under the wrapper is
/// affected; sockets (send, recv) are not among the calls that fail here, so the node stays reachable.
/// </summary>
public sealed class LibFiu(string fifoDirectory)
{
    public const int EIO = 5;

    /// <summary>The failure points of a failing disk: every positioned write (data, bitmap, activity log, journal) and every fsync.</summary>
    public static readonly string[] DiskFailurePoints = ["posix/io/rw/pwrite", "posix/io/rw/pwrite64", "posix/io/rw/pwritev", "posix/io/sync/fsync", "posix/io/sync/fdatasync"];

    private string FifoPrefix => Path.Combine(fifoDirectory, "fiu-ctrl");

    /// <summary>What runs a process under libfiu's POSIX wrappers, with its remote control in <paramref name="fifoDirectory"/>.</summary>
    public IReadOnlyList<string> Wrapper => [ExternalTool.Require("fiu-run"), "-x", "-f", FifoPrefix];

    /// <summary>Makes every call of the failure points fail with <paramref name="errno"/> in process <paramref name="pid"/>.</summary>
    public Task FailAsync(int pid, IEnumerable<string> points, int errno = EIO) =>
        ControlAsync(pid, points.Select(p => $"enable name={p},failinfo={errno.ToString(CultureInfo.InvariantCulture)}"));

    /// <summary>The calls work again (the disk was repaired).</summary>
    public Task HealAsync(int pid, IEnumerable<string> points) => ControlAsync(pid, points.Select(p => $"disable name={p}"));

    private async Task ControlAsync(int pid, IEnumerable<string> commands)
    {
        var arguments = new List<string> { "-f", FifoPrefix };
        foreach (var command in commands)
        {
            arguments.Add("-c");
            arguments.Add(command);
        }

        arguments.Add(pid.ToString(CultureInfo.InvariantCulture));
        await ExternalTool.RunCheckedAsync("fiu-ctrl", arguments, TimeSpan.FromSeconds(30));
    }
}

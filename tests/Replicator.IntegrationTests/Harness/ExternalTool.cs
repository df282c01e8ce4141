using System.Diagnostics;
using System.Text;

namespace Replicator.IntegrationTests.Harness;

/// <summary>Runs a real client program (nbdinfo, qemu-io, qemu-img, nbdcopy, fio) with a time limit.</summary>
public static class ExternalTool
{
    private static readonly Dictionary<string, string> s_packages = new()
    {
        ["nbdinfo"] = "libnbd-bin",
        ["nbdcopy"] = "libnbd-bin",
        ["qemu-io"] = "qemu-utils",
        ["qemu-img"] = "qemu-utils",
        ["fio"] = "fio",
        ["nbdkit"] = "nbdkit",
        ["ip"] = "iproute2",
        ["nbdsh"] = "python3-libnbd",
        ["mkfs.ext4"] = "e2fsprogs",
        ["fallocate"] = "util-linux",
        ["mount"] = "mount",
        ["umount"] = "mount",
        ["fiu-run"] = "fiu-utils",
        ["fiu-ctrl"] = "fiu-utils",
    };

    /// <summary>The program's full path; fails the test, naming the Debian package, when it is not installed.</summary>
    public static string Require(string program)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin").Split(':').Append("/usr/sbin").Append("/sbin"))
        {
            var path = Path.Combine(dir, program);
            if (File.Exists(path))
            {
                return path;
            }
        }

        var package = s_packages.GetValueOrDefault(program, program);
        Assert.Fail($"'{program}' is not installed: install the Debian package '{package}' (./test.sh does this)");
        return null!;
    }

    public static async Task<ToolResult> RunAsync(string program, IEnumerable<string> arguments, TimeSpan? timeout = null, string? stdin = null,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(Require(program))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = stdin is not null,
            UseShellExecute = false,
        };
        if (program == "nbdsh")
        {
            // nbdsh runs "python3 -m nbd": the system's python3, which has Debian's nbd module, not
            // another one earlier on the PATH (pyenv).
            start.Environment["PATH"] = "/usr/bin:/bin:" + Environment.GetEnvironmentVariable("PATH");
        }

        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
            process.StandardInput.Close();
        }

        var limit = timeout ?? TimeSpan.FromSeconds(60);
        using var cts = new CancellationTokenSource(limit);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            Assert.Fail($"{program} {string.Join(' ', start.ArgumentList)} did not finish within {limit.TotalSeconds} s\n{await stdout}\n{await stderr}");
        }

        return new ToolResult(program, string.Join(' ', start.ArgumentList), process.ExitCode, await stdout, await stderr);
    }

    public static async Task<ToolResult> RunCheckedAsync(string program, IEnumerable<string> arguments, TimeSpan? timeout = null)
    {
        var result = await RunAsync(program, arguments, timeout);
        Assert.True(result.ExitCode == 0, result.Describe());
        return result;
    }
}

public sealed record ToolResult(string Program, string Arguments, int ExitCode, string Stdout, string Stderr)
{
    public string Describe()
    {
        var text = new StringBuilder();
        text.AppendLine($"{Program} {Arguments} exited with {ExitCode}");
        text.AppendLine("--- stdout ---").AppendLine(Stdout);
        text.AppendLine("--- stderr ---").AppendLine(Stderr);
        return text.ToString();
    }
}

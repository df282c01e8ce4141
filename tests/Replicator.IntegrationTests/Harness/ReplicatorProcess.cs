using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Replicator.IntegrationTests.Harness;

/// <summary>
/// A real <c>replicator</c> process started by a test: its output goes to a log file (shown when a
/// test fails), and it is ended by its own process id — SIGKILL, SIGTERM, SIGSTOP/SIGCONT — never by name.
/// </summary>
public sealed partial class ReplicatorProcess : IAsyncDisposable
{
    public const int SigKill = 9;
    public const int SigTerm = 15;
    public const int SigCont = 18;
    public const int SigStop = 19;

    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly Lock _lock = new();
    private readonly string _logPath;

    private ReplicatorProcess(Process process, string logPath, string description)
    {
        _process = process;
        _logPath = logPath;
        Description = description;
    }

    public int Pid => _process.Id;

    public string Description { get; }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public string Output
    {
        get
        {
            lock (_lock)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Path of the built replicator assembly that tests run.</summary>
    public static string AssemblyPath => Path.Combine(AppContext.BaseDirectory, "replicator.dll");

    /// <param name="wrapper">A program (and its arguments) that runs the replicator, such as <c>fiu-run -x</c>; it must exec it, keeping the pid.</param>
    public static ReplicatorProcess Start(IEnumerable<string> arguments, string logPath, IReadOnlyList<string>? wrapper = null)
    {
        var start = new ProcessStartInfo(wrapper is null ? DotnetHost() : wrapper[0]);
        if (wrapper is not null)
        {
            foreach (var argument in wrapper.Skip(1).Append(DotnetHost()))
            {
                start.ArgumentList.Add(argument);
            }
        }

        start.ArgumentList.Add(AssemblyPath);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        return Launch(start, logPath, "replicator " + string.Join(' ', start.ArgumentList.SkipWhile(a => a != AssemblyPath).Skip(1)));
    }

    /// <summary>
    /// Runs a shell script that ends by exec'ing <c>$REPLICATOR</c> (the start scripts of
    /// <c>scripts/pair-hosts.sh</c>): the process is then the replicator itself, ended by its pid like any other.
    /// </summary>
    public static ReplicatorProcess StartScript(string script, IEnumerable<string> arguments, string logPath)
    {
        var start = new ProcessStartInfo("bash");
        start.ArgumentList.Add(script);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["REPLICATOR"] = $"{DotnetHost()} {AssemblyPath}";
        return Launch(start, logPath, $"{script} {string.Join(' ', arguments)}");
    }

    private static ReplicatorProcess Launch(ProcessStartInfo start, string logPath, string description)
    {
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.RedirectStandardInput = true;
        start.UseShellExecute = false;
        start.Environment["DOTNET_gcServer"] = "0";
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var result = new ReplicatorProcess(process, logPath, description);
        process.OutputDataReceived += (_, e) => result.Append(e.Data);
        process.ErrorDataReceived += (_, e) => result.Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return result;
    }

    /// <summary>Runs a replicator command to completion (CLI use) and returns its exit code and output.</summary>
    public static async Task<ToolResult> RunAsync(IEnumerable<string> arguments, TimeSpan? timeout = null)
    {
        var args = new List<string> { AssemblyPath };
        args.AddRange(arguments);
        var start = new ProcessStartInfo(DotnetHost()) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        args.ForEach(start.ArgumentList.Add);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        var limit = timeout ?? TimeSpan.FromSeconds(60);
        using var cts = new CancellationTokenSource(limit);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"replicator {string.Join(' ', arguments)} did not finish within {limit.TotalSeconds} s");
        }

        return new ToolResult("replicator", string.Join(' ', arguments), process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Waits until the output contains <paramref name="text"/>; fails the test if the process exits or time runs out.</summary>
    public async Task WaitForOutputAsync(string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!Output.Contains(text, StringComparison.Ordinal))
        {
            if (_process.HasExited)
            {
                Assert.Fail($"{Description} exited with {_process.ExitCode} before printing '{text}':\n{Output}");
            }

            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"{Description} did not print '{text}' within {timeout.TotalSeconds} s:\n{Output}");
            }

            await Task.Delay(50);
        }
    }

    public void Signal(int signal)
    {
        if (!_process.HasExited)
        {
            SignalPid(_process.Id, signal);
        }
    }

    /// <summary>Sends a signal to a process this test started (by its pid).</summary>
    public static void SignalPid(int pid, int signal)
    {
        if (Kill(pid, signal) != 0 && Marshal.GetLastPInvokeError() != 3)
        {
            throw new InvalidOperationException($"kill({pid}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    /// <summary>SIGKILL, and wait for the process to be gone.</summary>
    public async Task KillAsync()
    {
        Signal(SigKill);
        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>SIGTERM, and wait for a clean exit; returns the exit code.</summary>
    public async Task<int> StopAsync(TimeSpan? timeout = null)
    {
        Signal(SigCont);
        Signal(SigTerm);
        try
        {
            await _process.WaitForExitAsync().WaitAsync(timeout ?? TimeSpan.FromSeconds(30));
        }
        catch (TimeoutException)
        {
            await KillAsync();
            Assert.Fail($"{Description} did not stop within the time allowed after SIGTERM:\n{Output}");
        }

        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            Signal(SigCont);
            Signal(SigKill);
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }

        _process.Dispose();
    }

    private static string DotnetHost() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_lock)
        {
            _output.AppendLine(line);
            try
            {
                File.AppendAllText(_logPath, line + "\n");
            }
            catch (IOException)
            {
                // A last line that arrives after the test removed the process's directory: the output
                // above keeps it, and a harness must never take the test host down with it.
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}

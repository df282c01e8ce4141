using System.Diagnostics;
using Replicator.Core.Storage;

namespace Replicator.Node.Cluster;

/// <summary>
/// A <c>replicator</c> process started by <c>cluster up</c>: this same executable with other
/// arguments, its output appended to a log file, ended by pid (SIGTERM, then SIGKILL).
/// </summary>
internal sealed class ChildProcess : IDisposable
{
    private readonly Process _process;

    private ChildProcess(string name, Process process, string logPath)
    {
        Name = name;
        _process = process;
        LogPath = logPath;
    }

    public string Name { get; }

    public string LogPath { get; }

    public int Pid => _process.Id;

    public Task Exited => _process.WaitForExitAsync();

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>Starts <c>replicator ARGS</c> with stdout and stderr appended to <paramref name="logPath"/>.</summary>
    public static ChildProcess Start(string name, IEnumerable<string> arguments, string logPath)
    {
        // The shell only sets up the redirection and then becomes replicator (exec): same pid,
        // and the child's output does not depend on this process staying alive. umask 077: the
        // log, and anything the child makes without a mode of its own, is its user's alone.
        var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("umask 077; exec \"$@\" >>\"$REPLICATOR_LOG\" 2>&1 </dev/null");
        start.ArgumentList.Add("replicator");
        foreach (var part in SelfCommand())
        {
            start.ArgumentList.Add(part);
        }

        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["REPLICATOR_LOG"] = logPath;
        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {name}");
        return new ChildProcess(name, process, logPath);
    }

    /// <summary>The command that runs this executable: the app host, or <c>dotnet replicator.dll</c>.</summary>
    public static IReadOnlyList<string> SelfCommand()
    {
        var host = Environment.ProcessPath ?? throw new InvalidOperationException("cannot tell which executable this is");
        return Path.GetFileNameWithoutExtension(host) == "dotnet"
            ? [host, typeof(ChildProcess).Assembly.Location]
            : [host];
    }

    /// <summary>SIGTERM, then SIGKILL if it has not exited within <paramref name="grace"/>.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (_process.HasExited)
        {
            return;
        }

        Posix.Signal(_process.Id, Posix.SigTerm);
        try
        {
            await _process.WaitForExitAsync().WaitAsync(grace);
        }
        catch (TimeoutException)
        {
            Posix.Signal(_process.Id, Posix.SigKill);
            await _process.WaitForExitAsync();
        }
    }

    public void Dispose() => _process.Dispose();
}

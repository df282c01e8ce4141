using System.Diagnostics;
using System.Text;

namespace Replicator.IntegrationTests.Harness;

/// <summary>A client program running in the background whose output the test watches as it comes.</summary>
public sealed class RunningTool : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly Lock _lock = new();
    private readonly string _description;

    private RunningTool(Process process, string description)
    {
        _process = process;
        _description = description;
    }

    public int Pid => _process.Id;

    public static RunningTool Start(string program, IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(ExternalTool.Require(program))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var process = new Process { StartInfo = start };
        var tool = new RunningTool(process, $"{program} ({start.ArgumentList.Count} arguments)");
        process.OutputDataReceived += (_, e) => tool.Append(tool._stdout, e.Data);
        process.ErrorDataReceived += (_, e) => tool.Append(tool._stderr, e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return tool;
    }

    public string Stdout
    {
        get
        {
            lock (_lock)
            {
                return _stdout.ToString();
            }
        }
    }

    public int CountLines(Func<string, bool> predicate)
    {
        lock (_lock)
        {
            return _stdout.ToString().Split('\n').Count(predicate);
        }
    }

    /// <summary>Waits for the program to exit (fails the test after <paramref name="timeout"/>) and returns what it printed.</summary>
    public async Task<ToolResult> WaitAsync(TimeSpan timeout)
    {
        try
        {
            await _process.WaitForExitAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            _process.Kill(entireProcessTree: true);
            Assert.Fail($"{_description} did not finish within {timeout.TotalSeconds} s");
        }

        _process.WaitForExit();
        lock (_lock)
        {
            return new ToolResult(_description, "", _process.ExitCode, _stdout.ToString(), _stderr.ToString());
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    private void Append(StringBuilder target, string? line)
    {
        if (line is not null)
        {
            lock (_lock)
            {
                target.AppendLine(line);
            }
        }
    }
}

namespace Replicator.Node.Cli;

/// <summary>What the <c>replicator</c> process exit code means. Scripts and tests rely on these.</summary>
internal static class ExitCodes
{
    public const int Ok = 0;

    /// <summary>The command ran and found a problem: replicas differ, a check failed.</summary>
    public const int CheckFailed = 1;

    /// <summary>The command line was wrong: unknown option, bad value, missing argument.</summary>
    public const int Usage = 2;

    /// <summary>The node (or cluster) could not be reached.</summary>
    public const int Unreachable = 3;

    /// <summary>The node refused or failed the operation (it said why).</summary>
    public const int Failed = 4;

    /// <summary>The process was interrupted (Ctrl-C) before it finished.</summary>
    public const int Interrupted = 130;
}

/// <summary>A failure the CLI reports as one line and an exit code, without a stack trace.</summary>
internal sealed class CliException(int exitCode, string message) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

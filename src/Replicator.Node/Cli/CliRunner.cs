using Replicator.Core.Devices;
using Replicator.Node.Configuration;

namespace Replicator.Node.Cli;

/// <summary>Runs a command body and turns the failures a user can act on into one line on stderr and an exit code.</summary>
internal static class CliRunner
{
    public static Task<int> RunAsync(Func<Task> body) => RunAsync(async () =>
    {
        await body();
        return ExitCodes.Ok;
    });

    public static async Task<int> RunAsync(Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (CliException e)
        {
            await Console.Error.WriteLineAsync($"replicator: {e.Message}");
            return e.ExitCode;
        }
        catch (ConfigurationException e)
        {
            await Console.Error.WriteLineAsync($"replicator: {e.Message}");
            return ExitCodes.Usage;
        }
        catch (Exception e) when (e is BlockDeviceException or InvalidDataException)
        {
            await Console.Error.WriteLineAsync($"replicator: {e.Message}");
            return ExitCodes.Failed;
        }
        catch (OperationCanceledException)
        {
            return ExitCodes.Interrupted;
        }
    }
}

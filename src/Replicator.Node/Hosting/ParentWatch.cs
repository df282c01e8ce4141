using Replicator.Core.Storage;

namespace Replicator.Node.Hosting;

/// <summary>Stops the host when the parent process (cluster up) is gone, so a node never outlives its cluster.</summary>
internal sealed class ParentWatch(int parentPid, IHostApplicationLifetime lifetime, ILogger<ParentWatch> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(500));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            if (!Posix.IsAlive(parentPid))
            {
                logger.LogWarning("The parent process {Pid} is gone; stopping this node", parentPid);
                lifetime.StopApplication();
                return;
            }
        }
    }
}

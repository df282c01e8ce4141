using Replicator.Core.Tests.Support.Faults;
using Xunit.Abstractions;

namespace Replicator.Core.Tests.Faults;

/// <summary>
/// The single-node engine (pool, thin volumes, journal and checkpoints, replica bitmap, activity log
/// and metadata) through hundreds of power losses at random points: in the middle of a write, an
/// allocation, a trim, a checkpoint, a volume create, resize or delete, a clean shutdown, and the
/// recovery after the previous loss. After each, the engine is opened on what survived and checked
/// (<see cref="EngineWorkload.VerifyAfterRestartAsync"/>): no flushed write lost, nothing that was never
/// written, accounting that adds up, every change the absent peer lacks marked for it. A failure
/// names its seed: replay it with <c>REPLICATOR_FAULT_SEED</c> (see <see cref="FaultRuns"/>).
/// </summary>
public sealed class PowerLossTests(ITestOutputHelper output)
{
    private const int CrashesPerSeed = 100;

    [Fact]
    public async Task Power_losses_at_random_points_lose_no_flushed_write_and_leave_every_change_marked()
    {
        var crashes = 0;
        foreach (var seed in FaultRuns.Seeds(1, 2, 3))
        {
            crashes += await RunAsync(seed);
        }

        output.WriteLine($"{crashes} power losses");
        Assert.True(crashes >= 3 * CrashesPerSeed || Environment.GetEnvironmentVariable("REPLICATOR_FAULT_SEED") is not null);
    }

    private static async Task<int> RunAsync(int seed)
    {
        var files = new FaultFileSystem(seed) { WritebackChance = 0.2 };
        var workload = new EngineWorkload(seed, files);
        for (var crash = 0; crash < CrashesPerSeed; crash++)
        {
            files.Mode = (PowerLossMode)workload.Random.Next(3);
            files.CutPowerAt(1 + workload.Random.Next(80));
            try
            {
                for (var step = 0; step < 300; step++)
                {
                    var outcome = await workload.StepAsync();
                    if (!outcome.Succeeded && outcome.Error is not Core.Devices.BlockDeviceException { Error: Core.Devices.StorageError.NoSpace })
                    {
                        throw new EngineCheckException(workload, $"an operation failed with no fault injected: {outcome.Error}");
                    }
                }

                files.CancelPowerCut();
            }
            catch (PowerCutException)
            {
                workload.PowerWasCut();
            }

            await workload.RestartAfterPowerLossAsync(workload.Random.Next(4) == 0 ? 1 + workload.Random.Next(30) : null);
        }

        return CrashesPerSeed;
    }
}

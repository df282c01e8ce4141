using System.IO.Pipelines;

namespace Replicator.Fuzz.Targets;

/// <summary>
/// One piece of protocol code driven by arbitrary bytes. Shared by the afl++ harness (<c>Program.cs</c>, coverage
/// guided, long runs) and the test suite (<c>FuzzTargetTests</c>, seeds and a few thousand mutations, seconds).
/// </summary>
internal interface IFuzzTarget
{
    /// <summary>The name the harness and the corpus directory use.</summary>
    string Name { get; }

    /// <summary>Inputs that reach deep into the code, made from the sample messages the tests use.</summary>
    IEnumerable<(string Name, byte[] Bytes)> Seeds();

    /// <summary>
    /// Runs one input to its end. Returns for whatever the code handles as the protocol says: a valid parse or the
    /// protocol error the code defines. Throws <see cref="FuzzFailure"/> (or lets any other exception out) for a bug.
    /// </summary>
    void Run(byte[] input);
}

/// <summary>The code under test did something no input may make it do.</summary>
internal sealed class FuzzFailure(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The targets, by name.</summary>
internal static class FuzzTargets
{
    public static IReadOnlyList<IFuzzTarget> All { get; } =
    [
        new NbdParsersTarget(),
        new NbdSessionTarget(tlsRequired: false),
        new NbdSessionTarget(tlsRequired: true),
        new PeerFramesTarget(),
        new PeerHandshakeTarget(),
    ];

    public static IFuzzTarget? Find(string name) => All.FirstOrDefault(t => t.Name == name);
}

/// <summary>Runs one input with the checks every target shares: no exception but the protocol's, bounded allocation.</summary>
internal static class FuzzCheck
{
    /// <summary>
    /// Most bytes one input may make the process allocate: a few of the largest requests the NBD server accepts
    /// (32 MiB). A length read from the wire and trusted would ask for gigabytes.
    /// </summary>
    public const long AllocationBudget = 128L << 20;

    /// <summary>Runs <paramref name="input"/>; throws <see cref="FuzzFailure"/> when it allocated more than the budget.</summary>
    public static void Run(IFuzzTarget target, byte[] input)
    {
        var before = GC.GetTotalAllocatedBytes();
        target.Run(input);
        var allocated = GC.GetTotalAllocatedBytes() - before;
        if (allocated > AllocationBudget)
        {
            throw new FuzzFailure($"{target.Name}: an input of {input.Length} bytes made the process allocate {allocated} bytes");
        }
    }

    /// <summary>Reads what the code under test sends until it closes, as the other end of a connection would.</summary>
    public static async Task DrainAsync(PipeReader reader)
    {
        while (true)
        {
            var result = await reader.ReadAsync();
            reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                await reader.CompleteAsync();
                return;
            }
        }
    }
}

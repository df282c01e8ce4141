using Replicator.Fuzz.Targets;
using SharpFuzz;

namespace Replicator.Fuzz;

/// <summary>
/// The fuzzing harness. <c>run.sh</c> next to this project builds it, instruments Replicator.Protocol.dll with
/// SharpFuzz and starts afl-fuzz on one target; see README.md.
/// </summary>
internal static class Program
{
    private const string Usage = """
        usage: Replicator.Fuzz TARGET                 read inputs from afl-fuzz (SharpFuzz's out-of-process mode)
               Replicator.Fuzz seeds DIR              write every target's seed corpus to DIR/TARGET/
               Replicator.Fuzz replay TARGET FILE...  run the files in-process and print what each did
               Replicator.Fuzz list                   name the targets
        """;

    public static int Main(string[] args)
    {
        switch (args)
        {
            case ["list"]:
                FuzzTargets.All.ToList().ForEach(t => Console.WriteLine(t.Name));
                return 0;
            case ["seeds", var directory]:
                return WriteSeeds(directory);
            case ["replay", var name, .. var files] when FuzzTargets.Find(name) is { } target:
                return Replay(target, files);
            case [var name] when FuzzTargets.Find(name) is { } target:
                Fuzzer.OutOfProcess.Run(stream =>
                {
                    using var copy = new MemoryStream();
                    stream.CopyTo(copy);
                    FuzzCheck.Run(target, copy.ToArray());
                });
                return 0;
            default:
                Console.Error.WriteLine(Usage);
                Console.Error.WriteLine($"targets: {string.Join(", ", FuzzTargets.All.Select(t => t.Name))}");
                return 2;
        }
    }

    private static int WriteSeeds(string directory)
    {
        foreach (var target in FuzzTargets.All)
        {
            var folder = Directory.CreateDirectory(Path.Combine(directory, target.Name)).FullName;
            foreach (var (name, bytes) in target.Seeds())
            {
                File.WriteAllBytes(Path.Combine(folder, name), bytes);
            }
        }

        return 0;
    }

    private static int Replay(IFuzzTarget target, string[] files)
    {
        var failed = 0;
        foreach (var file in files)
        {
            try
            {
                FuzzCheck.Run(target, File.ReadAllBytes(file));
                Console.WriteLine($"ok      {file}");
            }
            catch (Exception exception)
            {
                failed++;
                Console.WriteLine($"FAILED  {file}\n{exception}");
            }
        }

        return failed == 0 ? 0 : 1;
    }
}

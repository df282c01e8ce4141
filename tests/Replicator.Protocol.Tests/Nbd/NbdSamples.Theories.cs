namespace Replicator.Protocol.Tests.Nbd;

/// <summary>The sample names as xunit theory data.</summary>
internal static partial class NbdSamples
{
    public static TheoryData<string> OptionNames() => [.. Options.Keys];

    public static TheoryData<string> RequestNames() => [.. Requests.Keys];
}

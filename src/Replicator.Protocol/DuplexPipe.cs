using System.IO.Pipelines;

namespace Replicator.Protocol;

/// <summary>The two halves of a connection as one <see cref="IDuplexPipe"/>, whatever carries the bytes.</summary>
internal sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
{
    public PipeReader Input { get; } = input;

    public PipeWriter Output { get; } = output;
}

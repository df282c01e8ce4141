using System.IO.Pipelines;
using Replicator.Protocol.Nbd;
using Replicator.Protocol.Tests.Nbd.Support;

namespace Replicator.Protocol.Tests.Nbd;

public sealed class NbdReplyChannelTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Replies_handed_over_inside_a_send_batch_leave_in_one_send_when_it_ends(bool batched)
    {
        var pipe = new Pipe();
        var output = new CountingPipeWriter(pipe.Writer);
        var released = 0L;
        var channel = new NbdReplyChannel(output, bytes => released += bytes, new TestLogger(), "test");

        if (batched)
        {
            SendBatch.Enter();
        }

        try
        {
            for (var handle = 1UL; handle <= 3; handle++)
            {
                channel.Enqueue(new NbdPendingReply(NbdReplyKind.Simple, handle, 0, 0, null, 0, null, AdmittedBytes: 10));
            }

            Assert.Equal(batched ? 0 : 3, output.Flushes);
        }
        finally
        {
            if (batched)
            {
                SendBatch.Exit();
            }
        }

        Assert.Equal(batched ? 1 : 3, output.Flushes);
        Assert.Equal(30, released);
        var read = await pipe.Reader.ReadAtLeastAsync(3 * NbdWire.SimpleReplyLength).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(3 * NbdWire.SimpleReplyLength, read.Buffer.Length);
    }
}

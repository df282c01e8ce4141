using Replicator.IntegrationTests.Harness;

namespace Replicator.IntegrationTests.SingleNode;

/// <summary>
/// Malformed and hostile NBD traffic against a running node: each case gets the error the NBD
/// spec names (or a clean disconnect), a log line saying what was wrong, and leaves other
/// connections and the stored data alone.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class BadInputTests(NodeFixture fixture) : IClassFixture<NodeFixture>
{
    private TestNode Node => fixture.Node;

    [Fact]
    public async Task Requests_outside_the_volume_get_einval_or_enospc_and_the_connection_stays_usable()
    {
        var volume = await WithPatternAsync();
        await using var client = await RawNbdClient.ConnectAsync(Node.NbdTcp);
        await client.GoAsync(volume, requestBlockSize: true);
        var size = (ulong)client.ExportSize;

        await client.SendRequestAsync(RawNbdClient.CmdRead, 0, 1, size - 512, 1024);
        Assert.Equal(RawNbdClient.EINVAL, (await client.ReadReplyAsync()).Error);

        await client.SendRequestAsync(RawNbdClient.CmdWrite, 0, 2, size, 512, new byte[512]);
        Assert.Equal(RawNbdClient.ENOSPC, (await client.ReadReplyAsync()).Error);

        // offset + length wraps around 2^64
        await client.SendRequestAsync(RawNbdClient.CmdRead, 0, 3, ulong.MaxValue - 511, 1024);
        Assert.Equal(RawNbdClient.EINVAL, (await client.ReadReplyAsync()).Error);

        // Longer than the advertised 32 MiB maximum.
        await client.SendRequestAsync(RawNbdClient.CmdRead, 0, 4, 0, (64u << 20) + 512);
        Assert.Equal(RawNbdClient.EINVAL, (await client.ReadReplyAsync()).Error);

        // Not a multiple of the advertised 512-byte minimum block size.
        await client.SendRequestAsync(RawNbdClient.CmdRead, 0, 5, 100, 512);
        Assert.Equal(RawNbdClient.EINVAL, (await client.ReadReplyAsync()).Error);

        // An unknown command, and a flag a read does not take.
        await client.SendRequestAsync(77, 0, 6, 0, 512);
        Assert.Equal(RawNbdClient.EINVAL, (await client.ReadReplyAsync()).Error);
        await client.SendRequestAsync(RawNbdClient.CmdRead, 0x8000, 7, 0, 512);
        Assert.Equal(RawNbdClient.EINVAL, (await client.ReadReplyAsync()).Error);

        // Still usable, and the data is what it was.
        await client.SendRequestAsync(RawNbdClient.CmdRead, 0, 8, 0, 4096);
        var read = await client.ReadReplyAsync(4096);
        Assert.Equal(0u, read.Error);
        Assert.Equal(8ul, read.Cookie);
        Assert.True(read.Data.AsSpan().IndexOfAnyExcept((byte)0x3c) < 0);
        await AssertPatternIntactAsync(volume);
        Assert.Contains("beyond the end of the export", Node.Process!.Output, StringComparison.Ordinal);
        Assert.Contains("not a multiple of the minimum block size", Node.Process!.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bad_request_magic_ends_only_that_connection()
    {
        var volume = await WithPatternAsync();
        await using var bad = await RawNbdClient.ConnectAsync(Node.NbdTcp);
        await bad.GoAsync(volume);
        await bad.WriteAsync(new byte[28]);
        Assert.True(await bad.IsClosedByServerAsync(TimeSpan.FromSeconds(10)));
        await AssertPatternIntactAsync(volume);
    }

    [Fact]
    public async Task A_client_that_vanishes_mid_write_leaves_the_data_unchanged()
    {
        var volume = await WithPatternAsync();
        var client = await RawNbdClient.ConnectAsync(Node.NbdTcp);
        await client.GoAsync(volume);
        await client.SendRequestAsync(RawNbdClient.CmdWrite, 0, 1, 0, 65536);
        await client.WriteAsync(Enumerable.Repeat((byte)0xee, 1000).ToArray());
        await client.DisposeAsync();

        await Task.Delay(200);
        await AssertPatternIntactAsync(volume);
    }

    [Fact]
    public async Task A_truncated_handshake_and_garbage_flags_are_dropped_without_disturbing_others()
    {
        var volume = await WithPatternAsync();
        await using (var truncated = await RawNbdClient.ConnectAsync(Node.NbdTcp))
        {
            await truncated.GreetAsync();
            await truncated.WriteAsync([0x49, 0x48]);
        }

        await using var garbage = await RawNbdClient.ConnectAsync(Node.NbdTcp);
        await garbage.WriteAsync([0xff, 0xff, 0xff, 0xff]);
        Assert.True(await garbage.IsClosedByServerAsync(TimeSpan.FromSeconds(10)));
        await AssertPatternIntactAsync(volume);
    }

    [Fact]
    public async Task Unknown_options_and_exports_get_option_errors_and_the_handshake_continues()
    {
        var volume = await WithPatternAsync();
        await using var client = await RawNbdClient.ConnectAsync(Node.NbdTcp);
        await client.GreetAsync();
        Assert.Equal([0x80000001u], await client.OptionAsync(99, [1, 2, 3]));
        var missing = "no-such-volume"u8.ToArray();
        var go = new byte[4 + missing.Length + 2];
        go[3] = (byte)missing.Length;
        missing.CopyTo(go, 4);
        Assert.Equal([0x80000006u], await client.OptionAsync(7, go));
        Assert.Equal([0x80000003u], await client.OptionAsync(7, [0, 0, 0, 200]));

        var name = System.Text.Encoding.UTF8.GetBytes(volume);
        var good = new byte[4 + name.Length + 2];
        good[3] = (byte)name.Length;
        name.CopyTo(good, 4);
        Assert.Equal(1u, (await client.OptionAsync(7, good))[^1]);
        await client.SendRequestAsync(RawNbdClient.CmdRead, 0, 1, 0, 512);
        Assert.Equal(0u, (await client.ReadReplyAsync(512)).Error);
    }

    private async Task<string> WithPatternAsync()
    {
        var volume = await fixture.NewVolumeAsync("16M");
        await RealClientTests.QemuIo(Node.Uri(volume), "write -P 0x3c 0 1M");
        return volume;
    }

    private async Task AssertPatternIntactAsync(string volume) =>
        await RealClientTests.QemuIo(Node.Uri(volume), "read -P 0x3c 0 1M", "read -P 0 1M 15M");
}

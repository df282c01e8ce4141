using System.Text.Json;
using Replicator.IntegrationTests.Harness;

namespace Replicator.IntegrationTests.SingleNode;

/// <summary>A single node driven by the NBD clients hypervisor hosts use: libnbd's tools, QEMU's, fio.</summary>
[Collection(IntegrationCollection.Name)]
public sealed class RealClientTests(NodeFixture fixture) : IClassFixture<NodeFixture>
{
    private TestNode Node => fixture.Node;

    [Fact]
    public async Task Nbdinfo_reports_the_volume_size_over_tcp_and_unix_socket()
    {
        var volume = await fixture.NewVolumeAsync("96M");
        foreach (var uri in new[] { Node.Uri(volume), Node.UnixUri(volume) })
        {
            var info = await ExternalTool.RunCheckedAsync("nbdinfo", ["--json", uri]);
            using var json = JsonDocument.Parse(info.Stdout);
            var export = json.RootElement.GetProperty("exports")[0];
            Assert.Equal(96L << 20, export.GetProperty("export-size").GetInt64());
            Assert.Equal(volume, export.GetProperty("export-name").GetString());
        }
    }

    [Fact]
    public async Task Nbdinfo_lists_every_volume()
    {
        var a = await fixture.NewVolumeAsync();
        var b = await fixture.NewVolumeAsync();
        var list = await ExternalTool.RunCheckedAsync("nbdinfo", ["--list", "--json", Node.NbdTcp]);
        using var json = JsonDocument.Parse(list.Stdout);
        var names = json.RootElement.GetProperty("exports").EnumerateArray().Select(e => e.GetProperty("export-name").GetString()).ToList();
        Assert.Contains(a, names);
        Assert.Contains(b, names);
    }

    [Fact]
    public async Task Nbdinfo_map_shows_holes_where_nothing_was_written_and_after_a_trim()
    {
        var volume = await fixture.NewVolumeAsync("64M");
        var uri = Node.Uri(volume);
        Assert.Equal([(0L, 64L << 20, "hole,zero")], await MapAsync(uri));

        await QemuIo(uri, "write -P 0x5a 4M 1M");
        Assert.Equal([(0L, 4L << 20, "hole,zero"), (4L << 20, 1L << 20, "data"), (5L << 20, 59L << 20, "hole,zero")], await MapAsync(uri));

        await QemuIo(uri, "discard 4M 1M");
        Assert.Equal([(0L, 64L << 20, "hole,zero")], await MapAsync(uri));
        await QemuIo(uri, "read -P 0 4M 1M");
    }

    [Fact]
    public async Task Qemu_io_patterns_read_back_and_neighbours_stay_zero()
    {
        var volume = await fixture.NewVolumeAsync("64M");
        var uri = Node.Uri(volume);
        await QemuIo(uri, "write -P 0xab 0 1M", "write -P 0xcd 1M 4k", "write -P 0xef 10000k 3k", "write -z 512k 64k");
        await QemuIo(uri, "read -P 0xab 0 512k", "read -P 0 512k 64k", "read -P 0xab 576k 448k", "read -P 0xcd 1M 4k",
            "read -P 0 1028k 8k", "read -P 0xef 10000k 3k");
        var mismatch = await ExternalTool.RunAsync("qemu-io", ["-f", "raw", "-c", "read -P 0x11 0 4k", uri]);
        Assert.Contains("Pattern verification failed", mismatch.Stdout + mismatch.Stderr);
    }

    [Fact]
    public async Task Qemu_img_convert_onto_a_volume_then_compare_reports_identical()
    {
        var volume = await fixture.NewVolumeAsync("32M");
        var image = Path.Combine(Node.Directory, $"{volume}.raw");
        WriteSparseImage(image, 32 << 20, seed: 7);
        await ExternalTool.RunCheckedAsync("qemu-img", ["convert", "-n", "-f", "raw", "-O", "raw", image, Node.Uri(volume)], TimeSpan.FromMinutes(2));
        var compare = await ExternalTool.RunCheckedAsync("qemu-img", ["compare", "-f", "raw", "-F", "raw", image, Node.Uri(volume)], TimeSpan.FromMinutes(2));
        Assert.Contains("Images are identical", compare.Stdout);
    }

    [Fact]
    public async Task Nbdcopy_copies_a_volume_to_a_file_and_back()
    {
        var source = await fixture.NewVolumeAsync("32M");
        var target = await fixture.NewVolumeAsync("32M");
        await QemuIo(Node.Uri(source), "write -P 0x42 0 3M", "write -P 0x99 20M 1M");
        var file = Path.Combine(Node.Directory, $"{source}.copy");
        await ExternalTool.RunCheckedAsync("nbdcopy", [Node.Uri(source), file], TimeSpan.FromMinutes(2));
        await ExternalTool.RunCheckedAsync("nbdcopy", [file, Node.UnixUri(target)], TimeSpan.FromMinutes(2));
        await QemuIo(Node.Uri(target), "read -P 0x42 0 3M", "read -P 0 3M 17M", "read -P 0x99 20M 1M", "read -P 0 21M 11M");
        var bytes = await File.ReadAllBytesAsync(file);
        Assert.Equal(32 << 20, bytes.Length);
        Assert.True(bytes.AsSpan(0, 3 << 20).IndexOfAnyExcept((byte)0x42) < 0);
    }

    [Fact]
    public async Task Fio_random_writes_verify_with_crc32c()
    {
        var volume = await fixture.NewVolumeAsync("64M");
        var result = await Fio.RunAsync(Node.Uri(volume), Node.Directory, "verify", "--rw=randwrite", "--bs=4k", "--size=32M",
            "--iodepth=16", "--verify=crc32c", "--verify_fatal=1", "--do_verify=1");
        Assert.True(result.ExitCode == 0 && result.Errors == 0, result.Output);
        Assert.True(result.WrittenBytes >= 32L << 20, $"fio wrote {result.WrittenBytes} bytes");
    }

    [Fact]
    public async Task Write_zeroes_and_flush_and_fua_through_qemu_io()
    {
        var volume = await fixture.NewVolumeAsync("16M");
        var uri = Node.Uri(volume);
        await QemuIo(uri, "write -P 0x77 0 2M", "write -z 0 1M", "write -z -u 1M 64k", "flush", "write -f -P 0x33 3M 4k");
        await QemuIo(uri, "read -P 0 0 1M", "read -P 0 1M 64k", "read -P 0x77 1088k 960k", "read -P 0x33 3M 4k");
    }

    /// <summary>
    /// Runs qemu-io on <paramref name="uri"/>. QEMU reads no certificates from a URI: an <c>nbds://HOST:PORT/EXPORT?tls-certificates=DIR</c>
    /// one is given as QEMU takes it, a <c>tls-creds-x509</c> object and the NBD driver's options.
    /// </summary>
    internal static async Task QemuIo(string uri, params string[] commands)
    {
        var (args, image) = QemuImage(uri);
        foreach (var command in commands)
        {
            args.AddRange(["-c", command]);
        }

        args.Add(image);
        var result = await ExternalTool.RunCheckedAsync("qemu-io", args, TimeSpan.FromMinutes(2));
        Assert.DoesNotContain("Pattern verification failed", result.Stdout);
        Assert.DoesNotContain("failed", result.Stderr, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>qemu-io's options and its image argument (last on its command line) for the export at <paramref name="uri"/>.</summary>
    internal static (List<string> Options, string Image) QemuImage(string uri)
    {
        if (!uri.StartsWith("nbds://", StringComparison.Ordinal))
        {
            return (["-f", "raw"], uri);
        }

        var parsed = new Uri(uri);
        const string parameter = "tls-certificates=";
        var certificates = Uri.UnescapeDataString(parsed.Query.TrimStart('?').Split('&').Single(p => p.StartsWith(parameter, StringComparison.Ordinal))[parameter.Length..]);
        var export = Uri.UnescapeDataString(parsed.AbsolutePath.TrimStart('/'));
        return (["--object", $"tls-creds-x509,id=tls0,endpoint=client,dir={certificates}", "--image-opts"],
            $"driver=nbd,server.type=inet,server.host={parsed.Host},server.port={parsed.Port},export={export},tls-creds=tls0");
    }

    internal static async Task<List<(long Offset, long Length, string Description)>> MapAsync(string uri)
    {
        var map = await ExternalTool.RunCheckedAsync("nbdinfo", ["--map", "--json", uri]);
        using var json = JsonDocument.Parse(map.Stdout);
        return json.RootElement.EnumerateArray()
            .Select(e => (e.GetProperty("offset").GetInt64(), e.GetProperty("length").GetInt64(), e.GetProperty("description").GetString()!))
            .ToList();
    }

    private static void WriteSparseImage(string path, int size, int seed)
    {
        var random = new Random(seed);
        using var file = File.Create(path);
        file.SetLength(size);
        var chunk = new byte[256 << 10];
        for (var offset = 0; offset < size; offset += 2 << 20)
        {
            random.NextBytes(chunk);
            file.Position = offset;
            file.Write(chunk);
        }
    }
}

namespace Replicator.IntegrationTests.Harness;

/// <summary>
/// A small ext4 file system in an image file, mounted over a loop device (as root: <c>mkfs.ext4</c>,
/// <c>mount -o loop</c>), so a node's pool can fill up for real. A ballast file takes most of its space
/// and can be removed to give it back. Unmounting detaches the loop device.
/// </summary>
public sealed class LoopFileSystem : IAsyncDisposable
{
    private LoopFileSystem(string image, string mountPoint)
    {
        Image = image;
        MountPoint = mountPoint;
    }

    public string Image { get; }

    public string MountPoint { get; }

    public string BallastPath => Path.Combine(MountPoint, "ballast");

    /// <summary>Bytes the file system has free now.</summary>
    public long FreeBytes => new DriveInfo(MountPoint).AvailableFreeSpace;

    /// <summary>Creates a file system of <paramref name="bytes"/> in <paramref name="image"/> and mounts it at <paramref name="mountPoint"/>.</summary>
    public static async Task<LoopFileSystem> MountAsync(string image, string mountPoint, long bytes)
    {
        await using (var file = File.Create(image))
        {
            file.SetLength(bytes);
        }

        await ExternalTool.RunCheckedAsync("mkfs.ext4", ["-q", "-F", image], TimeSpan.FromMinutes(1));
        Directory.CreateDirectory(mountPoint);
        await ExternalTool.RunCheckedAsync("mount", ["-o", "loop", image, mountPoint], TimeSpan.FromMinutes(1));
        return new LoopFileSystem(image, mountPoint);
    }

    /// <summary>Takes space with a ballast file (allocated for real) until only <paramref name="leaveFree"/> bytes are free.</summary>
    public async Task FillAsync(long leaveFree)
    {
        var size = FreeBytes - leaveFree;
        Assert.True(size > 0, $"the file system has only {FreeBytes} bytes free, less than the {leaveFree} to leave");
        await ExternalTool.RunCheckedAsync("fallocate", ["-l", size.ToString(System.Globalization.CultureInfo.InvariantCulture), BallastPath], TimeSpan.FromMinutes(1));
    }

    /// <summary>Frees the space the ballast took.</summary>
    public void RemoveBallast() => File.Delete(BallastPath);

    public async ValueTask DisposeAsync()
    {
        await ExternalTool.RunAsync("umount", [MountPoint], TimeSpan.FromMinutes(1));
        File.Delete(Image);
    }
}

namespace Replicator.Core.Storage;

/// <summary>Whole-file reads and the one atomic replace every small state file is saved with.</summary>
public static class FileSystemExtensions
{
    /// <summary>The suffix of the temporary file <see cref="WriteAtomically"/> writes before the rename.</summary>
    public const string TemporarySuffix = ".tmp";

    /// <summary>Reads a whole file (a small one: metadata, configuration).</summary>
    public static byte[] ReadAllBytes(this IFileSystem files, string path)
    {
        ArgumentNullException.ThrowIfNull(files);
        using var file = files.OpenFile(path, FileOpenMode.Open);
        var length = file.Length;
        if (length > Array.MaxLength)
        {
            throw new InvalidDataException($"{path} is {length} bytes, too large to be a metadata file");
        }

        var bytes = new byte[length];
        var read = file.Read(0, bytes);
        return read == bytes.Length ? bytes : bytes[..read];
    }

    /// <summary>
    /// Replaces <paramref name="path"/>'s contents so that a crash or power loss at any moment leaves
    /// either the old file or the new one, whole: the bytes go to <c>path.tmp</c>, which is synced,
    /// renamed over <paramref name="path"/>, and then the directory is synced. When it throws (a full
    /// disk, an I/O error), the old file is untouched. Callers serialize saves of the same path.
    /// </summary>
    public static void WriteAtomically(this IFileSystem files, string path, ReadOnlySpan<byte> bytes)
    {
        files.WriteTemporary(path, bytes);
        files.ReplaceWithTemporary(path);
    }

    /// <summary>
    /// The first half of <see cref="WriteAtomically"/>: <paramref name="bytes"/> in <c>path.tmp</c>, synced.
    /// Nothing a reader of <paramref name="path"/> sees has changed, whether it returns or throws.
    /// </summary>
    public static void WriteTemporary(this IFileSystem files, string path, ReadOnlySpan<byte> bytes)
    {
        ArgumentNullException.ThrowIfNull(files);
        var temp = path + TemporarySuffix;
        files.DeleteFile(temp);
        try
        {
            using var file = files.OpenFile(temp, FileOpenMode.CreateNew);
            file.Write(0, bytes);
            file.Flush();
        }
        catch
        {
            TryDelete(files, temp);
            throw;
        }
    }

    /// <summary>
    /// The second half of <see cref="WriteAtomically"/>: renames <c>path.tmp</c> over <paramref name="path"/>
    /// and syncs the directory. When it throws, the rename may have happened or not, and may not be durable.
    /// </summary>
    public static void ReplaceWithTemporary(this IFileSystem files, string path)
    {
        ArgumentNullException.ThrowIfNull(files);
        files.RenameFile(path + TemporarySuffix, path);
        files.SyncDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
    }

    private static void TryDelete(IFileSystem files, string path)
    {
        try
        {
            files.DeleteFile(path);
        }
        catch (IOException)
        {
            // The first error is the one to report; a stale temporary file is deleted by the next save.
        }
    }
}

namespace Replicator.Protocol.Security;

/// <summary>
/// Files and directories of credentials: private keys are readable by their owner only (0600), in
/// directories only their owner can enter (0700); certificates and revocation lists are public
/// (0644). Every file is written whole under a temporary name and renamed into place, so a crash
/// never leaves half a key or a certificate that does not match its key.
/// </summary>
internal static class SecureFiles
{
    public const UnixFileMode PrivateFileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    public const UnixFileMode PublicFileMode = PrivateFileMode | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
    public const UnixFileMode PrivateDirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>Creates <paramref name="path"/> (and its missing parents) and makes it 0700.</summary>
    public static void CreatePrivateDirectory(string path)
    {
        Directory.CreateDirectory(path, PrivateDirectoryMode);
        File.SetUnixFileMode(path, PrivateDirectoryMode);
    }

    /// <summary>Writes <paramref name="contents"/> to <paramref name="path"/> with <paramref name="mode"/>, atomically and durably.</summary>
    public static void WriteAtomically(string path, ReadOnlySpan<byte> contents, UnixFileMode mode)
    {
        var temp = path + ".tmp";
        using (var stream = new FileStream(temp, new FileStreamOptions
        {
            Mode = FileMode.Create,
            Access = FileAccess.Write,
            UnixCreateMode = mode,
        }))
        {
            stream.Write(contents);
            stream.Flush(flushToDisk: true);
        }

        File.SetUnixFileMode(temp, mode);
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>
    /// Refuses a private key that others than its owner may read or write, as ssh refuses such an
    /// identity file: a key that leaked to another local user is no proof of identity any more.
    /// </summary>
    /// <exception cref="TlsSetupException">The key file is open to the group or to others.</exception>
    public static void RequirePrivate(string path)
    {
        var mode = File.GetUnixFileMode(path);
        const UnixFileMode open = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
            | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;
        if ((mode & open) != 0)
        {
            throw new TlsSetupException($"the private key {path} may be read by other users (mode {Convert.ToString((int)mode, 8)}); make it 0600 (chmod 600 {path})");
        }
    }
}

/// <summary>A TLS identity cannot be used as found on disk; the message says what to fix.</summary>
internal sealed class TlsSetupException(string message, Exception? innerException = null) : Exception(message, innerException);

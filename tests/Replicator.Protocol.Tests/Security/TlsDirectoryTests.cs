using Replicator.Protocol.Security;

namespace Replicator.Protocol.Tests.Security;

/// <summary>A holder's TLS files on disk: written private, refused when they are not, read again when they change.</summary>
public sealed class TlsDirectoryTests : IDisposable
{
    private readonly TestPki _pki = new();

    [Fact]
    public void A_written_directory_has_the_layout_qemu_reads_with_a_private_key_in_a_private_directory()
    {
        using var certificate = _pki.Issue(IdentityRole.Node, "a");
        var directory = _pki.Write("a", certificate);

        Assert.Equal(
            [TlsDirectory.AuthorityFile, TlsDirectory.ServerCertificateFile, TlsDirectory.ServerKeyFile],
            Directory.GetFiles(directory.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal(SecureFiles.PrivateDirectoryMode, File.GetUnixFileMode(directory.Path));
        Assert.Equal(SecureFiles.PrivateFileMode, File.GetUnixFileMode(directory.KeyPath));
        Assert.Equal(SecureFiles.PublicFileMode, File.GetUnixFileMode(directory.CertificatePath));
        var identity = directory.Load().Identity;
        Assert.Equal((IdentityRole.Node, "a", _pki.ClusterId), (identity.Role, identity.Name, identity.ClusterId));
    }

    [Fact]
    public void A_client_directory_uses_the_client_file_names()
    {
        using var certificate = _pki.Issue(IdentityRole.Client, "qemu-host-1");
        var directory = _pki.Write("client", certificate, client: true);

        Assert.True(File.Exists(Path.Combine(directory.Path, TlsDirectory.ClientCertificateFile)));
        Assert.True(File.Exists(Path.Combine(directory.Path, TlsDirectory.ClientKeyFile)));
        Assert.Equal(IdentityRole.Client, directory.Load().Identity.Role);
    }

    [Fact]
    public void A_key_other_users_may_read_is_refused_as_ssh_refuses_it()
    {
        using var certificate = _pki.Issue(IdentityRole.Node, "a");
        var directory = _pki.Write("a", certificate);
        File.SetUnixFileMode(directory.KeyPath, SecureFiles.PublicFileMode);

        var error = Assert.Throws<TlsSetupException>(directory.Load);

        Assert.Contains("may be read by other users (mode 644)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_certificate_of_another_authority_than_the_directory_s_is_refused()
    {
        using var other = new TestPki(_pki.ClusterId);
        using var foreign = other.Issue(IdentityRole.Node, "a");
        var directory = _pki.Write("a", foreign);

        var error = Assert.Throws<TlsSetupException>(directory.Load);

        Assert.Contains("is not issued by this cluster's authority", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_file_is_named()
    {
        using var certificate = _pki.Issue(IdentityRole.Node, "a");
        var directory = _pki.Write("a", certificate);
        File.Delete(directory.CertificatePath);

        var error = Assert.Throws<TlsSetupException>(directory.Load);

        Assert.Contains($"{directory.CertificatePath} is missing", error.Message, StringComparison.Ordinal);
        Assert.Contains("replicator cert issue", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_renewed_certificate_is_used_from_the_next_load_on()
    {
        var id = Guid.NewGuid();
        using var first = _pki.Issue(IdentityRole.Node, "a", id);
        var directory = _pki.Write("a", first);
        Assert.Equal(CertificateIssuer.SerialOf(first), directory.Load().Serial);

        using var renewed = _pki.Issue(IdentityRole.Node, "a", id);
        _pki.Write("a", renewed);

        Assert.Equal(CertificateIssuer.SerialOf(renewed), directory.Load().Serial);
    }

    public void Dispose() => _pki.Dispose();
}

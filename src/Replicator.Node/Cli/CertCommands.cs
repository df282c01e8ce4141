using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Replicator.Node.Configuration;
using Replicator.Node.Security;
using Replicator.Protocol.Security;

namespace Replicator.Node.Cli;

/// <summary>
/// <c>replicator cert ca|issue|renew|revoke|show</c>: the cluster's certificates, for the two-host
/// procedure and for rotating and revoking them (docs/security.md walks through each).
/// </summary>
internal static class CertCommands
{
    public static Command Build()
    {
        var cert = new Command("cert", "Create the cluster's authority, issue, renew, revoke and inspect certificates (see docs/security.md)");
        cert.Subcommands.Add(Authority());
        cert.Subcommands.Add(Issue());
        cert.Subcommands.Add(Renew());
        cert.Subcommands.Add(Revoke());
        cert.Subcommands.Add(Show());
        return cert;
    }

    private static Command Authority()
    {
        var output = new Option<DirectoryInfo>("--out") { Description = "Where to create it (ca-cert.pem, and ca-key.pem readable by you only)", Required = true };
        var cluster = new Option<Guid?>("--cluster-id") { Description = "The cluster's id (default: a new one)" };
        var days = Days(3650);
        var json = CommonOptions.Json();
        var command = new Command("ca", "Create a cluster's certificate authority (on one machine; keep its key offline if you can)") { output, cluster, days, json };
        command.SetAction((parse, ct) => CliRunner.RunAsync(() =>
        {
            using var authority = ClusterAuthority.Create(parse.GetValue(output)!.FullName, parse.GetValue(cluster) ?? Guid.NewGuid(), TimeSpan.FromDays(parse.GetValue(days)));
            var info = new AuthorityInfo(authority.ClusterId, authority.Directory, CertificateIssuer.SerialOf(authority.Certificate), authority.Certificate.NotAfter.ToUniversalTime());
            Print(parse.GetValue(json), info, $"created the authority of cluster {info.ClusterId} in {info.Directory} (valid until {info.NotAfter:u}); its key is {ClusterAuthority.KeyPath(info.Directory)}");
            return Task.CompletedTask;
        }));
        return command;
    }

    private static Command Issue()
    {
        var role = new Argument<string>("role") { Description = "node, witness, gateway (their directories: ca-cert.pem, server-cert.pem, server-key.pem), admin or client (ca-cert.pem, client-cert.pem, client-key.pem)" };
        var authority = AuthorityOption();
        var name = new Option<string>("--name") { Description = "The holder's name (a node's name, as its node.json and its peer's name it)", Required = true };
        var id = new Option<Guid?>("--id") { Description = "The holder's id (a node's id; default: a new one, printed)" };
        var output = new Option<DirectoryInfo>("--out") { Description = "The holder's directory to write (copy it to the holder's host)", Required = true };
        var dns = new Option<string[]>("--dns") { Description = "A host name clients reach the holder by (repeatable)", AllowMultipleArgumentsPerToken = true };
        var ip = new Option<string[]>("--ip") { Description = "An address clients reach the holder by (repeatable)", AllowMultipleArgumentsPerToken = true };
        var days = Days((int)CertificateIssuer.DefaultLeafLifetime.TotalDays);
        var json = CommonOptions.Json();
        var command = new Command("issue", "Issue a certificate bundle for a node, the witness, the gateway, an administrator or an NBD client")
        {
            role, authority, name, id, output, dns, ip, days, json,
        };
        command.SetAction((parse, ct) => CliRunner.RunAsync(() =>
        {
            if (!ClusterIdentity.TryParseRole(parse.GetValue(role), out var parsedRole))
            {
                throw new CliException(ExitCodes.Usage, $"'{parse.GetValue(role)}' is not a role: node, witness, gateway, admin or client");
            }

            var addresses = (parse.GetValue(ip) ?? []).Select(a => IPAddress.TryParse(a, out var address) ? address : throw new CliException(ExitCodes.Usage, $"--ip '{a}' is not an address")).ToList();
            using var ca = ClusterAuthority.Open(parse.GetValue(authority)!.FullName);
            var identity = new ClusterIdentity(parsedRole, parse.GetValue(name)!, parse.GetValue(id) ?? Guid.NewGuid(), ca.ClusterId);
            var directory = parse.GetValue(output)!.FullName;
            using var issued = IssueOrUsage(() => ca.IssueInto(directory, identity, parse.GetValue(dns), addresses, TimeSpan.FromDays(parse.GetValue(days))));
            var info = Describe(issued, directory);
            Print(parse.GetValue(json), info, $"issued the certificate of the {identity} in cluster {identity.ClusterId} into {directory} (serial {info.Serial}, valid until {info.NotAfter:u})"
                + (parsedRole == IdentityRole.Node ? $"\nits peer's node.json names it: \"peer\": {{ \"name\": \"{identity.Name}\", \"nodeId\": \"{identity.Id}\", ... }}" : ""));
            return Task.CompletedTask;
        }));
        return command;
    }

    private static Command Renew()
    {
        var authority = AuthorityOption();
        var directory = new Option<DirectoryInfo>("--dir") { Description = "The holder's certificate directory (a node's DIR/tls, say)", Required = true };
        var days = Days((int)CertificateIssuer.DefaultLeafLifetime.TotalDays);
        var json = CommonOptions.Json();
        var command = new Command("renew", "Issue a new certificate and key for the same holder (same role, name, id, host names) and put them in place; "
            + "the holder uses them from its next connection on, and the old certificate stays valid until it expires or is revoked")
        {
            authority, directory, days, json,
        };
        command.SetAction((parse, ct) => CliRunner.RunAsync(() =>
        {
            var path = parse.GetValue(directory)!.FullName;
            var holder = OpenHolder(path);
            var current = holder.Load();
            using var ca = ClusterAuthority.Open(parse.GetValue(authority)!.FullName);
            var names = current.Certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().FirstOrDefault();
            using var renewed = IssueOrUsage(() => ca.IssueInto(path, current.Identity, names?.EnumerateDnsNames().ToList(), names?.EnumerateIPAddresses().ToList(),
                TimeSpan.FromDays(parse.GetValue(days))));
            var info = Describe(renewed, path) with { Replaced = current.Serial };
            Print(parse.GetValue(json), info, $"renewed the certificate of the {current.Identity} in {path}: serial {info.Serial} (valid until {info.NotAfter:u}) replaces {current.Serial}; "
                + $"once every connection made with the old one is gone, revoke it: replicator cert revoke --list <revoked.json> --serial {current.Serial}");
            return Task.CompletedTask;
        }));
        return command;
    }

    private static Command Revoke()
    {
        var list = new Option<FileInfo>("--list") { Description = "The cluster's revocation list (cluster up: DIR/tls/revoked.json); created if missing. Copy it to every host", Required = true };
        var serial = new Option<string?>("--serial") { Description = "Revoke the certificate with this serial number (hex)" };
        var id = new Option<Guid?>("--id") { Description = "Revoke every certificate of this identity (a node's id: the node is out of the cluster)" };
        var certificate = new Option<FileInfo?>("--cert") { Description = "Revoke this certificate file (or the one in this holder directory)" };
        var reason = new Option<string?>("--reason") { Description = "Why, for the logs of whoever refuses it" };
        var json = CommonOptions.Json();
        var command = new Command("revoke", "Revoke a certificate (by serial) or an identity (by id); nodes, the witness and the gateway refuse it from their next check on")
        {
            list, serial, id, certificate, reason, json,
        };
        command.SetAction((parse, ct) => CliRunner.RunAsync(() =>
        {
            var given = new object?[] { parse.GetValue(serial), parse.GetValue(id), parse.GetValue(certificate) }.Count(o => o is not null);
            if (given != 1)
            {
                throw new CliException(ExitCodes.Usage, "give exactly one of --serial, --id or --cert");
            }

            RevocationEntry entry;
            if (parse.GetValue(certificate) is { } file)
            {
                using var revoked = LoadCertificate(Directory.Exists(file.FullName) ? OpenHolder(file.FullName).CertificatePath : file.FullName);
                ClusterIdentity.TryRead(revoked, out var identity, out _);
                entry = new RevocationEntry(CertificateIssuer.SerialOf(revoked), identity?.Id, identity?.Name, parse.GetValue(reason), DateTimeOffset.UtcNow);
            }
            else if (parse.GetValue(serial) is { } hex)
            {
                if (hex.Length == 0 || !hex.All(Uri.IsHexDigit))
                {
                    throw new CliException(ExitCodes.Usage, $"--serial '{hex}' is not a hex serial number");
                }

                entry = new RevocationEntry(hex.ToUpperInvariant(), null, null, parse.GetValue(reason), DateTimeOffset.UtcNow);
            }
            else
            {
                entry = new RevocationEntry(null, parse.GetValue(id), null, parse.GetValue(reason), DateTimeOffset.UtcNow);
            }

            var path = parse.GetValue(list)!.FullName;
            var added = RevocationList.Add(path, entry);
            Print(parse.GetValue(json), new { revoked = entry, list = path, added },
                (added ? "revoked" : "already revoked") + $": {entry}; list {path}. Copy it to every host whose list is elsewhere; members read it at their next check (within seconds)");
            return Task.CompletedTask;
        }));
        return command;
    }

    private static Command Show()
    {
        var path = new Argument<string>("path") { Description = "A holder's directory, or a certificate file" };
        var list = new Option<FileInfo?>("--list") { Description = "Also check it against this revocation list" };
        var json = CommonOptions.Json();
        var command = new Command("show", "Print who a certificate names (role, name, id, cluster), its serial and dates, and whether it checks against its directory's ca-cert.pem")
        {
            path, list, json,
        };
        command.SetAction((parse, ct) => CliRunner.RunAsync(() =>
        {
            var target = Path.GetFullPath(parse.GetValue(path)!);
            var file = Directory.Exists(target) ? OpenHolder(target).CertificatePath : target;
            using var certificate = LoadCertificate(file);
            var info = Describe(certificate, Path.GetDirectoryName(file)!);
            var authorities = Path.Combine(Path.GetDirectoryName(file)!, TlsDirectory.AuthorityFile);
            string? problem = null;
            if (ClusterIdentity.TryRead(certificate, out var identity, out var notIdentity) && File.Exists(authorities))
            {
                var trusted = new X509Certificate2Collection();
                trusted.ImportFromPemFile(authorities);
                var revocations = parse.GetValue(list) is { } listFile ? new RevocationList(listFile.FullName) : RevocationList.None;
                var side = CertificateIssuer.ServesTls(identity!.Role) ? TlsSide.Server : TlsSide.Client;
                problem = new ClusterTrust(identity.ClusterId, () => trusted, revocations).Check(certificate, new IdentityRequirement([identity.Role], side)).Problem;
            }
            else
            {
                problem = identity is null ? notIdentity : $"there is no {TlsDirectory.AuthorityFile} beside it to check it against";
            }

            info = info with { Problem = problem };
            Print(parse.GetValue(json), info,
                $"{file}: {(identity is null ? "not a Replicator identity" : $"the {identity} of cluster {identity.ClusterId}")}\n"
                + $"  serial {info.Serial}, valid {info.NotBefore:u} to {info.NotAfter:u}, issued by '{certificate.Issuer}'\n"
                + $"  names: {string.Join(", ", info.Names)}\n"
                + $"  {(problem is null ? "checks against " + authorities : "does not check: " + problem)}");
            return Task.FromResult(problem is null ? ExitCodes.Ok : ExitCodes.CheckFailed);
        }));
        return command;
    }

    private static Option<DirectoryInfo> AuthorityOption() =>
        new("--ca") { Description = "The authority's directory (cert ca --out; cluster up: DIR/tls/ca)", Required = true };

    private static Option<int> Days(int days) =>
        new("--days") { Description = $"Days it stays valid (default {days})", DefaultValueFactory = _ => days };

    private static TlsDirectory OpenHolder(string directory)
    {
        foreach (var client in new[] { false, true })
        {
            var holder = new TlsDirectory(directory, client);
            if (holder.Exists)
            {
                return holder;
            }
        }

        throw new CliException(ExitCodes.Failed, $"{directory} holds neither {TlsDirectory.ServerCertificateFile} nor {TlsDirectory.ClientCertificateFile}");
    }

    private static X509Certificate2 LoadCertificate(string file)
    {
        try
        {
            return X509CertificateLoader.LoadCertificateFromFile(file);
        }
        catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw new CliException(ExitCodes.Failed, $"{file} is not a certificate: {e.Message}");
        }
    }

    private static X509Certificate2 IssueOrUsage(Func<X509Certificate2> issue)
    {
        try
        {
            return issue();
        }
        catch (ArgumentException e)
        {
            throw new CliException(ExitCodes.Usage, e.Message);
        }
    }

    private static CertificateInfo Describe(X509Certificate2 certificate, string directory)
    {
        ClusterIdentity.TryRead(certificate, out var identity, out _);
        var names = certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().FirstOrDefault();
        return new CertificateInfo(
            identity is null ? null : ClusterIdentity.RoleText(identity.Role), identity?.Name, identity?.Id, identity?.ClusterId,
            CertificateIssuer.SerialOf(certificate), certificate.NotBefore.ToUniversalTime(), certificate.NotAfter.ToUniversalTime(),
            [.. names?.EnumerateDnsNames() ?? [], .. (names?.EnumerateIPAddresses() ?? []).Select(a => a.ToString())], directory);
    }

    private static void Print<T>(bool json, T value, string text)
    {
        if (json)
        {
            CommonOptions.PrintJson(value);
        }
        else
        {
            Console.WriteLine(text);
        }
    }

    private sealed record AuthorityInfo(Guid ClusterId, string Directory, string Serial, DateTime NotAfter);

    private sealed record CertificateInfo(string? Role, string? Name, Guid? Id, Guid? ClusterId, string Serial, DateTime NotBefore, DateTime NotAfter, List<string> Names, string Directory)
    {
        public string? Replaced { get; init; }

        public string? Problem { get; init; }
    }
}

using System.Text.Json;
using System.Text.Json.Serialization;

namespace Replicator.Protocol.Security;

/// <summary>One revoked certificate (by serial number) or every certificate of one identity (by id).</summary>
/// <param name="Serial">The certificate's serial number in hex; when set, only that certificate is revoked.</param>
/// <param name="Id">The identity's id (a node id, say); when set without a serial, every certificate of that identity is revoked.</param>
/// <param name="Name">For people: whose certificate it was.</param>
/// <param name="Reason">For people: why.</param>
/// <param name="RevokedAt">When it was added.</param>
internal sealed record RevocationEntry(string? Serial, Guid? Id, string? Name, string? Reason, DateTimeOffset RevokedAt)
{
    public bool Matches(string serial, Guid id) =>
        Serial is { } revokedSerial ? string.Equals(revokedSerial, serial, StringComparison.OrdinalIgnoreCase) : Id == id;

    public override string ToString() =>
        (Serial is not null ? $"serial {Serial}" : $"id {Id}") + (Name is null ? "" : $" ({Name})") + $", revoked {RevokedAt:u}" + (Reason is null ? "" : $": {Reason}");
}

/// <summary>
/// The cluster's revocation list: a JSON file (<c>{"revoked": [...]}</c>) every node, the witness
/// and the gateway read on each handshake, so a revocation takes effect on the next connection
/// without a restart. A missing file is an empty list; a file that cannot be read refuses every
/// certificate (it fails closed), since its entries can no longer be checked.
/// </summary>
/// <remarks>
/// Not signed: it only ever takes trust away, and whoever can write it can write the authority
/// certificate beside it too. It is copied to every host as the authority certificate is.
/// Reading is cheap: the file (a few hundred bytes) is read at each check and parsed again only when it changed.
/// </remarks>
internal sealed class RevocationList
{
    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private readonly Lock _lock = new();
    private bool _read;
    private byte[]? _loadedBytes;
    private Loaded _loaded = new([], null);

    /// <param name="path">The list's file; null for a cluster without one (nothing is revoked).</param>
    public RevocationList(string? path)
    {
        Path = path;
    }

    /// <summary>An empty list that reads no file.</summary>
    public static RevocationList None { get; } = new(null);

    public string? Path { get; }

    /// <summary>
    /// Why <paramref name="serial"/> / <paramref name="id"/> may not be trusted: the entry that revokes it,
    /// or the list's own problem when it cannot be read; null when it is not revoked.
    /// </summary>
    public string? FindRevocation(string serial, Guid id)
    {
        var loaded = Current();
        if (loaded.Problem is { } problem)
        {
            return problem;
        }

        return loaded.Entries.FirstOrDefault(e => e.Matches(serial, id)) is { } entry ? $"it is revoked ({entry})" : null;
    }

    /// <summary>The entries as the file holds them now.</summary>
    public IReadOnlyList<RevocationEntry> Entries => Current().Entries;

    /// <summary>Adds an entry to the list at <paramref name="path"/> (created if missing), atomically; false when an equal entry is there already.</summary>
    /// <exception cref="InvalidDataException">The file exists and is not a revocation list.</exception>
    public static bool Add(string path, RevocationEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        if (entry.Serial is null && entry.Id is null)
        {
            throw new ArgumentException("A revocation names a serial number or an id.", nameof(entry));
        }

        var entries = File.Exists(path) ? Parse(File.ReadAllBytes(path), path) : [];
        var duplicate = entry.Serial is { } serial
            ? entries.Any(e => string.Equals(e.Serial, serial, StringComparison.OrdinalIgnoreCase))
            : entries.Any(e => e.Serial is null && e.Id == entry.Id);
        if (duplicate)
        {
            return false;
        }

        entries.Add(entry);
        SecureFiles.WriteAtomically(path, JsonSerializer.SerializeToUtf8Bytes(new ListFile(entries), JsonOptions), SecureFiles.PublicFileMode);
        return true;
    }

    private Loaded Current()
    {
        if (Path is null)
        {
            return _loaded;
        }

        lock (_lock)
        {
            byte[]? bytes;
            try
            {
                bytes = File.Exists(Path) ? File.ReadAllBytes(Path) : null;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                _read = false;
                return _loaded = new Loaded([], $"the revocation list {Path} cannot be read, so no certificate can be checked against it ({e.Message})");
            }

            if (_read && (bytes ?? []).AsSpan().SequenceEqual(_loadedBytes ?? []) && (bytes is null) == (_loadedBytes is null))
            {
                return _loaded;
            }

            try
            {
                _loaded = bytes is null ? new Loaded([], null) : new Loaded(Parse(bytes, Path), null);
            }
            catch (InvalidDataException e)
            {
                _loaded = new Loaded([], $"the revocation list {Path} cannot be read, so no certificate can be checked against it ({e.Message})");
            }

            _loadedBytes = bytes;
            _read = true;
            return _loaded;
        }
    }

    private static List<RevocationEntry> Parse(byte[] bytes, string path)
    {
        try
        {
            var file = JsonSerializer.Deserialize<ListFile>(bytes, JsonOptions);
            if (file?.Revoked is not { } entries || entries.Any(e => e is null || (e.Serial is null && e.Id is null)))
            {
                throw new InvalidDataException($"{path} is not a revocation list: it needs {{\"revoked\": [{{\"serial\": \"…\"}} or {{\"id\": \"…\"}}, …]}}");
            }

            return entries;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not valid JSON: {e.Message}", e);
        }
    }

    private sealed record Loaded(List<RevocationEntry> Entries, string? Problem);

    private sealed record ListFile(List<RevocationEntry> Revoked);
}

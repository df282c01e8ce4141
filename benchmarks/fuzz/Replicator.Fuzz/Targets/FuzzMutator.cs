using System.Buffers.Binary;

namespace Replicator.Fuzz.Targets;

/// <summary>
/// Makes inputs from seeds the way afl's havoc stage does, without its coverage feedback: a few random edits of one
/// seed (bit flips, interesting bytes and lengths, chunks deleted, repeated or spliced in from another seed). Used by
/// the short run in the test suite, where a fixed random seed makes every run the same.
/// </summary>
internal sealed class FuzzMutator(IReadOnlyList<byte[]> seeds, int randomSeed)
{
    /// <summary>Values that break length and count checks: zero, one, the edges of the signed and unsigned ranges, the block size limits.</summary>
    private static readonly uint[] Interesting =
    [
        0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 4096, 4097, 65536 + 16,
        32 << 20, (32 << 20) + 1, 0x7fffffff, 0x80000000, 0xfffffff0, 0xffffffff,
    ];

    private readonly Random _random = new(randomSeed);

    public byte[] Next()
    {
        var input = new List<byte>(seeds[_random.Next(seeds.Count)]);
        var edits = 1 + _random.Next(4);
        for (var i = 0; i < edits; i++)
        {
            Edit(input);
        }

        return [.. input];
    }

    private void Edit(List<byte> input)
    {
        var at = input.Count == 0 ? 0 : _random.Next(input.Count);
        switch (_random.Next(8))
        {
            case 0 when input.Count > 0:
                input[at] ^= (byte)(1 << _random.Next(8));
                break;
            case 1 when input.Count > 0:
                input[at] = (byte)Interesting[_random.Next(Interesting.Length)];
                break;
            case 2 when input.Count >= 4:
                var word = new byte[4];
                BinaryPrimitives.WriteUInt32BigEndian(word, Interesting[_random.Next(Interesting.Length)]);
                at = Math.Min(at, input.Count - 4);
                input.RemoveRange(at, 4);
                input.InsertRange(at, word);
                break;
            case 3 when input.Count > 0:
                input.RemoveRange(at, Math.Min(input.Count - at, 1 + _random.Next(16)));
                break;
            case 4 when input.Count > 0:
                var chunk = input.GetRange(at, Math.Min(input.Count - at, 1 + _random.Next(32)));
                input.InsertRange(_random.Next(input.Count + 1), chunk);
                break;
            case 5:
                var noise = new byte[1 + _random.Next(8)];
                _random.NextBytes(noise);
                input.InsertRange(at, noise);
                break;
            case 6:
                var other = seeds[_random.Next(seeds.Count)];
                var from = _random.Next(other.Length + 1);
                input.RemoveRange(at, input.Count - at);
                input.AddRange(other.AsSpan(from).ToArray());
                break;
            default:
                if (input.Count > 0)
                {
                    input.RemoveRange(at, input.Count - at);
                }

                break;
        }
    }
}

using Replicator.Core.Hashing;

namespace Replicator.Core.Tests.Hashing;

public sealed class XxHash64Tests
{
    private const ulong Prime32 = 2654435761;
    private const ulong Prime64 = 11400714785074694797;

    /// <summary>
    /// The XXH64 vectors of xxhsum's self-test (Cyan4973/xxHash, <c>cli/xsum_sanity_check.c</c>,
    /// <c>XSUM_XXH64_testdata</c>): length of the sanity buffer, seed, hash.
    /// </summary>
    public static TheoryData<int, ulong, ulong> ReferenceVectors => new()
    {
        { 0, 0, 0xEF46DB3751D8E999 },
        { 0, Prime32, 0xAC75FDA2929B17EF },
        { 1, 0, 0xE934A84ADB052768 },
        { 1, Prime32, 0x5014607643A9B4C3 },
        { 4, 0, 0x9136A0DCA57457EE },
        { 14, 0, 0x8282DCC4994E35C8 },
        { 14, Prime32, 0xC3BD6BF63DEB6DF0 },
        { 222, 0, 0xB641AE8CB691C174 },
        { 222, Prime32, 0x20CB8AB7AE10C14A },
    };

    /// <summary>
    /// XXH64 with seed 0 of the sanity buffer's first 0..67 bytes, computed with the reference C
    /// implementation (libxxhash 0.8.1). Crosses the 4-byte, 8-byte and 32-byte stripe boundaries.
    /// </summary>
    private static readonly ulong[] SeedZeroByLength =
    [
        0xEF46DB3751D8E999, 0xE934A84ADB052768, 0x5D48CD60A77E23FF, 0xFF7E1959CB50794A,
        0x9136A0DCA57457EE, 0x9B046FB1397F09A5, 0xC72565B7154268A8, 0x6C83909A9F01ED25,
        0xCDBCF538E71D1348, 0x554B1AE991EDA6B6, 0x5D00E7351392EA84, 0x6345D5746F35DA70,
        0x0723BF50086EAD9A, 0xC2E5013E3C40BCF7, 0x8282DCC4994E35C8, 0x180719316D622D84,
        0x98C90B57FDFCB55C, 0x0D39A2D051A30C2C, 0x33E84A4333B2B2EB, 0xE91C6EF31FC08F82,
        0x5F8C68355769439E, 0x42B0B8EE353AC461, 0x65C935C6978098B1, 0xD2460ECC840B74DD,
        0xF75A6DEA42DC5BF4, 0x52FAA43C3F20B994, 0x8DB7831EC345F9A3, 0x88945AA08051FC2D,
        0x64CD9E8C96A9E2DD, 0x8C8F345B634AC2B9, 0xE2677241D4C46CAF, 0x299B39A290E6D783,
        0x18B216492BB44B70, 0x55C8DC3E578F5B59, 0xD0CE7CBAE371BEB2, 0xCB0AA8E2A7A29707,
        0x0AE67584084DC6A4, 0x292F5332C92B73CE, 0x5F398E2A8478BED3, 0xB888CAF07592B1B3,
        0x23B3810D7D8B1731, 0x5342C966C7F3D5F4, 0x77454B74F1DBBF63, 0x9904C9350F597190,
        0x24EC2B3D0E442641, 0x4EC307EBE0A650A4, 0x7DD1C5514B2240EF, 0x84A42E167CBD1FEF,
        0xFD0FEEAC7A939933, 0xA91BFF78A7185B66, 0xDFFE9F293DDD101D, 0x2332585C18D7483A,
        0x5A0056511F9DD653, 0x4426A2F5C8D59469, 0x39EAF8893520636A, 0xAFEA98CC4E92F7E1,
        0xB7A6414B8D3E2597, 0xF33D64569CD4B1C0, 0x93FA072F0E8FE7CA, 0x4F2890576949D6ED,
        0x3378C44F459C290B, 0x40D486FDDDAD5CB7, 0x21664C60C551CC87, 0xA9EFBE0FA0F3F4E7,
        0xEF558F8ACAC2B5CD, 0xDE0F20DC2631AF7A, 0xCF1E52EDE1C505C4, 0x0965DF7219D2E741,
    ];

    [Theory]
    [MemberData(nameof(ReferenceVectors))]
    public void Matches_the_xxhsum_self_test_vectors(int length, ulong seed, ulong expected)
    {
        var data = SanityBuffer.AsSpan(0, length);

        Assert.Equal(expected, XxHash64.Hash(data, seed));
        Assert.Equal(expected, HashInOnePiece(data, seed));
        Assert.Equal(expected, HashByteByByte(data, seed));
    }

    [Fact]
    public void Matches_the_reference_implementation_for_every_length_across_two_stripes()
    {
        for (var length = 0; length < SeedZeroByLength.Length; length++)
        {
            var data = SanityBuffer.AsSpan(0, length);
            Assert.True(SeedZeroByLength[length] == XxHash64.Hash(data), $"one-shot, length {length}");
            Assert.True(SeedZeroByLength[length] == HashByteByByte(data, 0), $"byte by byte, length {length}");
        }
    }

    /// <summary>A 64-bit seed (PRIME64) uses the seed's high half, which xxhsum's 32-bit seeds never do; values from libxxhash 0.8.1.</summary>
    [Theory]
    [InlineData(0, 0x0B303D920EC349DFUL)]
    [InlineData(1, 0x9C6678669FCD2E6DUL)]
    [InlineData(3, 0x281B7CBB86CC6A05UL)]
    [InlineData(4, 0xCCFE4EAD7E01983CUL)]
    [InlineData(7, 0x3C18DF70E6EF9D24UL)]
    [InlineData(8, 0x768161B4E5A58DFAUL)]
    [InlineData(12, 0x0F2C37856FC19ED9UL)]
    [InlineData(31, 0x51AAF1A336575F00UL)]
    [InlineData(32, 0x21D817283F4B6283UL)]
    [InlineData(33, 0xB09782549294DF85UL)]
    [InlineData(63, 0x34C3933DC0040446UL)]
    [InlineData(64, 0xF90D26FED8023D61UL)]
    [InlineData(65, 0x7814174CD6405BEEUL)]
    [InlineData(100, 0x38F1D4AABFD12D0FUL)]
    [InlineData(1024, 0xCFBC5E785FF33CCDUL)]
    [InlineData(4161, 0x97B5A878795F78CEUL)]
    public void Matches_the_reference_implementation_with_a_64_bit_seed(int length, ulong expected)
    {
        var data = SanityBuffer.AsSpan(0, length);

        Assert.Equal(expected, XxHash64.Hash(data, Prime64));
        Assert.Equal(expected, HashByteByByte(data, Prime64));
    }

    [Fact]
    public void Incremental_equals_one_shot_for_every_split_point()
    {
        var data = SanityBuffer.AsSpan(0, 150);
        var expected = XxHash64.Hash(data, Prime32);

        for (var split = 0; split <= data.Length; split++)
        {
            var hasher = new XxHash64(Prime32);
            hasher.Append(data[..split]);
            hasher.Append(data[split..]);
            Assert.True(expected == hasher.GetCurrentHash(), $"split at {split}");
        }
    }

    [Fact]
    public void Incremental_equals_one_shot_for_every_pair_of_split_points()
    {
        var data = SanityBuffer.AsSpan(0, 100);
        var expected = XxHash64.Hash(data);

        for (var first = 0; first <= data.Length; first++)
        {
            for (var second = first; second <= data.Length; second++)
            {
                var hasher = new XxHash64(0);
                hasher.Append(data[..first]);
                hasher.Append(data[first..second]);
                hasher.Append(data[second..]);
                Assert.True(expected == hasher.GetCurrentHash(), $"splits at {first} and {second}");
            }
        }
    }

    [Fact]
    public void Current_hash_can_be_read_between_appends_and_after_reset()
    {
        var data = SanityBuffer.AsSpan(0, 222);
        var hasher = new XxHash64(Prime32);

        hasher.Append(data[..14]);
        Assert.Equal(0xC3BD6BF63DEB6DF0UL, hasher.GetCurrentHash());
        hasher.Append(data[14..]);
        Assert.Equal(0x20CB8AB7AE10C14AUL, hasher.GetCurrentHash());

        hasher.Reset();
        Assert.Equal(0xAC75FDA2929B17EFUL, hasher.GetCurrentHash());
        hasher.Append(data[..1]);
        Assert.Equal(0x5014607643A9B4C3UL, hasher.GetCurrentHash());
    }

    [Fact]
    public void Hashes_at_any_alignment_of_the_input()
    {
        var expected = XxHash64.Hash(SanityBuffer.AsSpan(0, 1000));
        var shifted = new byte[1000 + 7];

        for (var shift = 1; shift < 8; shift++)
        {
            SanityBuffer.AsSpan(0, 1000).CopyTo(shifted.AsSpan(shift));
            Assert.Equal(expected, XxHash64.Hash(shifted.AsSpan(shift, 1000)));
        }
    }

    private static ulong HashInOnePiece(ReadOnlySpan<byte> data, ulong seed)
    {
        var hasher = new XxHash64(seed);
        hasher.Append(data);
        return hasher.GetCurrentHash();
    }

    private static ulong HashByteByByte(ReadOnlySpan<byte> data, ulong seed)
    {
        var hasher = new XxHash64(seed);
        for (var i = 0; i < data.Length; i++)
        {
            hasher.Append(data.Slice(i, 1));
        }

        return hasher.GetCurrentHash();
    }

    /// <summary>xxhsum's sanity buffer (<c>XSUM_fillTestBuffer</c>): byte i is the top byte of PRIME32 * PRIME64^i.</summary>
    private static readonly byte[] SanityBuffer = CreateSanityBuffer(4096 + 64 + 1);

    private static byte[] CreateSanityBuffer(int length)
    {
        var buffer = new byte[length];
        var generator = Prime32;
        for (var i = 0; i < buffer.Length; i++)
        {
            buffer[i] = (byte)(generator >> 56);
            generator *= Prime64;
        }

        return buffer;
    }
}

using System.Net;
using System.Net.Sockets;
using Replicator.Protocol.Nbd.Client;

namespace Replicator.Protocol.Tests.Nbd.Client;

public class NbdUriTests
{
    [Theory]
    [InlineData("nbd://127.0.0.1:10900/vol0", "127.0.0.1:10900", "vol0")]
    [InlineData("nbd://127.0.0.1/vol0", "127.0.0.1:10809", "vol0")]
    [InlineData("nbd://[::1]:7000/my%20vol", "[::1]:7000", "my vol")]
    [InlineData("nbd://127.0.0.1:10900", "127.0.0.1:10900", "")]
    public void TcpUris(string text, string endPoint, string export)
    {
        var uri = NbdUri.Parse(text);
        Assert.Equal(IPEndPoint.Parse(endPoint), uri.EndPoint);
        Assert.Equal(export, uri.ExportName);
        Assert.False(uri.IsUnix);
        Assert.Equal(uri, NbdUri.Parse(uri.ToString()));
    }

    [Fact]
    public void UnixSocketUris()
    {
        var uri = NbdUri.Parse("nbd+unix:///vol1?socket=/tmp/cluster/gateway.sock");
        Assert.True(uri.IsUnix);
        Assert.Equal(new UnixDomainSocketEndPoint("/tmp/cluster/gateway.sock").ToString(), uri.EndPoint.ToString());
        Assert.Equal("vol1", uri.ExportName);
        Assert.Equal("nbd+unix:///vol1?socket=/tmp/cluster/gateway.sock", uri.ToString());
        Assert.Equal("vol2", uri.WithExport("vol2").ExportName);
    }

    [Theory]
    [InlineData("vol0")]
    [InlineData("http://127.0.0.1/vol0")]
    [InlineData("nbd+unix:///vol0")]
    [InlineData("nbd+unix:///vol0?sock=/x")]
    public void MalformedUrisAreRefusedWithAReason(string text)
    {
        Assert.False(NbdUri.TryParse(text, out _, out var error));
        Assert.False(string.IsNullOrEmpty(error));
        Assert.Throws<FormatException>(() => NbdUri.Parse(text));
    }
}

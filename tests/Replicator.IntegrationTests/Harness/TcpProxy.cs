using System.Net;
using System.Net.Sockets;

namespace Replicator.IntegrationTests.Harness;

/// <summary>
/// A TCP relay on loopback between two processes that a test can cut and heal, to play a broken
/// link. Cut is a black hole, as a failed switch or cable is: nothing is closed, bytes simply stop
/// arriving in both directions, so each side notices only by its own timeouts. Not even a close
/// crosses a cut link: a process killed on one side, or one that gives up on the link, leaves the
/// other side's connection open until heal. Heal drops the connections that were cut (as a real
/// link flap resets them) and relays new ones again.
/// </summary>
/// <remarks>
/// Why a relay rather than network namespaces: the nodes under test bind loopback addresses
/// chosen by <c>cluster up</c>, and a relay in the test process needs no root, no extra
/// processes and no cleanup beyond disposing it; the nodes see a real TCP peer either way.
/// </remarks>
public sealed class TcpProxy : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Relay> _relays = [];
    private readonly Lock _lock = new();
    private readonly Task _accepting;
    private volatile bool _cut;

    private TcpProxy(IPEndPoint target, int port)
    {
        _target = target;
        _listener = new TcpListener(IPAddress.Loopback, port);
        _listener.Start();
        EndPoint = (IPEndPoint)_listener.LocalEndpoint;
        _accepting = AcceptAsync();
    }

    public IPEndPoint EndPoint { get; }

    public int Cuts { get; private set; }

    /// <summary>Relays 127.0.0.1:<paramref name="port"/> (0 for any) to <paramref name="target"/>.</summary>
    public static TcpProxy Start(IPEndPoint target, int port = 0) => new(target, port);

    public void Cut()
    {
        _cut = true;
        Cuts++;
    }

    public void Heal()
    {
        List<Relay> dropped;
        lock (_lock)
        {
            dropped = [.. _relays];
            _relays.Clear();
            _cut = false;
        }

        dropped.ForEach(r => r.Dispose());
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        Heal();
        await _accepting;
        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            client.NoDelay = true;
            var relay = new Relay(client);
            lock (_lock)
            {
                _relays.Add(relay);
            }

            _ = RunAsync(relay);
        }
    }

    private async Task RunAsync(Relay relay)
    {
        try
        {
            while (_cut && !relay.Closed)
            {
                await Task.Delay(50);
            }

            if (relay.Closed)
            {
                return;
            }

            await relay.Server.ConnectAsync(_target);
            await Task.WhenAll(PumpAsync(relay, relay.Client, relay.Server), PumpAsync(relay, relay.Server, relay.Client));
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or IOException)
        {
        }
        finally
        {
            await HeldWhileCutAsync(relay);
            relay.Dispose();
        }
    }

    private async Task PumpAsync(Relay relay, Socket from, Socket to)
    {
        var buffer = new byte[64 << 10];
        while (!relay.Closed)
        {
            var n = await from.ReceiveAsync(buffer, SocketFlags.None);
            if (n == 0)
            {
                await HeldWhileCutAsync(relay);
                if (!relay.Closed)
                {
                    to.Shutdown(SocketShutdown.Send);
                }

                return;
            }

            // A cut link delivers nothing more: hold the bytes until the relay is dropped at heal.
            while (_cut && !relay.Closed)
            {
                await Task.Delay(50);
            }

            if (relay.Closed)
            {
                return;
            }

            await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None);
        }
    }

    /// <summary>While the link is cut, an end that one side made does not reach the other: wait for heal, which drops the relay.</summary>
    private async Task HeldWhileCutAsync(Relay relay)
    {
        while (_cut && !relay.Closed && !_stop.IsCancellationRequested)
        {
            await Task.Delay(50);
        }
    }

    private sealed class Relay(Socket client) : IDisposable
    {
        public Socket Client { get; } = client;

        public Socket Server { get; } = new(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };

        public bool Closed { get; private set; }

        public void Dispose()
        {
            Closed = true;
            Client.Dispose();
            Server.Dispose();
        }
    }
}

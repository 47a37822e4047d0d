"""Restarting on the same ports, at once, whatever the old connections do.

`systemctl restart`, a suite that restarts tardyd on 8474 and switching
between Toxiproxy and tardyd all start a new daemon on the ports the old
one just left. Connections the old one closed first sit in TIME_WAIT on
those ports (an HTTP/1.0 client, `Connection: close`, a proxied
connection whose upstream hung up), others are still open: none of them
may keep the new daemon off its ports. A live tardyd, though, must never
share a port with another process.
"""

import errno
import signal
import socket
import time

import tardytest
from tardytest import (Tardyd, echo_server, expect, free_port, main, now,
                       recv_exactly)

# Every daemon these tests stop must exit cleanly (no sanitizer report).
Tardyd = tardytest.CheckedTardyd


def time_waits(port):
    """Sockets in TIME_WAIT whose local port is port (/proc/net/tcp)."""
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, state = fields[1], fields[3]
                    if state == "06" and int(local.split(":")[1], 16) == port:
                        n += 1
        except FileNotFoundError:
            pass
    return n


def http10(port, path="/version"):
    """An HTTP/1.0 request: the server closes first."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET %s HTTP/1.0\r\nUser-Agent: test\r\n\r\n" % path.encode())
    data = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        data += d
    s.close()
    return data


def start(api_port, proxy_port, upstream):
    return Tardyd(args=["-a", "127.0.0.1:%d" % api_port, "-p",
                        "p=127.0.0.1:%d=%s" % (proxy_port, upstream)])


def bind_error(port):
    """errno of binding port with SO_REUSEADDR, as a careless server
    would, or 0 if it succeeded."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return 0
    except OSError as e:
        return e.errno
    finally:
        s.close()


def test_restart_after_http10_clients_and_open_connections():
    with echo_server() as up:
        api_port, proxy_port = free_port(), free_port()
        d = start(api_port, proxy_port, up.spec)
        try:
            for _ in range(5):
                expect(b'"version"' in http10(api_port), "API answers")
            # A proxied connection the upstream ends: tardyd closes its
            # side towards the client first.
            s = socket.create_connection(("127.0.0.1", proxy_port), 5)
            s.sendall(b"x")
            recv_exactly(s, 1)
            for c in list(up.conns):
                c.shutdown(socket.SHUT_RDWR)
            expect(s.recv(10) == b"", "EOF from the upstream")
            s.close()
            # And connections still open when it stops.
            held = [socket.create_connection(("127.0.0.1", proxy_port), 5)
                    for _ in range(3)]
            for h in held:
                h.sendall(b"y")
                recv_exactly(h, 1)
            deadline = now() + 2
            while time_waits(api_port) == 0 and now() < deadline:
                time.sleep(0.01)
            expect(time_waits(api_port) > 0,
                   "the API's closes left TIME_WAITs on its port")
            expect(time_waits(proxy_port) > 0,
                   "the proxy's close left a TIME_WAIT on its port")
            expect(d.stop() == 0, "stopped cleanly: %s" % d.log())
        finally:
            d.close()
        # At once, on the same ports.
        t0 = now()
        d = start(api_port, proxy_port, up.spec)
        try:
            expect(now() - t0 < 2 * tardytest.SLOW,
                   "restart took %.2f s" % (now() - t0))
            st, v = d.api("GET", "/version")
            expect(st == 200, "API after restart: %s %r" % (st, v))
            c = socket.create_connection(("127.0.0.1", proxy_port), 5)
            c.sendall(b"again")
            expect(recv_exactly(c, 5) == b"again", "proxy after restart")
            c.close()
        finally:
            d.close()
            for h in held:
                h.close()


def test_restart_after_sigkill():
    # A crashed daemon leaves its connections to the kernel: the next one
    # still gets the ports at once.
    with echo_server() as up:
        api_port, proxy_port = free_port(), free_port()
        d = start(api_port, proxy_port, up.spec)
        held = socket.create_connection(("127.0.0.1", proxy_port), 5)
        held.sendall(b"z")
        recv_exactly(held, 1)
        http10(api_port)
        d.stop(sig=signal.SIGKILL)
        d.close()
        d = start(api_port, proxy_port, up.spec)
        try:
            st, _ = d.api("GET", "/version")
            expect(st == 200, "API after SIGKILL and restart: %s" % st)
        finally:
            d.close()
            held.close()


def test_no_one_shares_a_live_port():
    with echo_server() as up:
        api_port, proxy_port = free_port(), free_port()
        with start(api_port, proxy_port, up.spec) as d:
            http10(api_port)
            for port, what in ((api_port, "API"), (proxy_port, "proxy")):
                err = bind_error(port)
                expect(err == errno.EADDRINUSE,
                       "binding the live %s port: %s" % (what, err))
            # Disabled, the proxy keeps its port from everyone.
            st, _ = d.api("POST", "/proxies/p", {"enabled": False})
            expect(st == 200, "disable: %s" % st)
            err = bind_error(proxy_port)
            expect(err == errno.EADDRINUSE,
                   "binding a disabled proxy's port: %s" % err)
            # A second tardyd on the same ports fails with a clear error.
            d2 = Tardyd(args=["-a", "127.0.0.1:%d" % api_port], wait=False)
            rc = d2.proc.wait(5 * tardytest.SLOW)
            log = d2.log()
            d2.close()
            expect(rc == 1 and "listen tcp 127.0.0.1:%d: bind: address "
                   "already in use" % api_port in log,
                   "second daemon: %s %s" % (rc, log))


def udp_round_trip(port):
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.settimeout(2)
    try:
        c.sendto(b"dgram", ("127.0.0.1", port))
        return c.recv(100)
    finally:
        c.close()


def test_udp_port_restarts_and_is_not_shared():
    up = tardytest.UdpEcho()
    port = free_port((socket.SOCK_DGRAM,))
    conf = "[proxy u]\nprotocol = udp\nlisten = 127.0.0.1:%d\n" \
           "upstream = %s\n" % (port, up.spec)
    try:
        with Tardyd(conf) as d:
            expect(udp_round_trip(port) == b"dgram", "through the proxy")
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                raise AssertionError("a live UDP proxy's port was shared")
            except OSError as e:
                expect(e.errno == errno.EADDRINUSE, "bind: %s" % e)
            finally:
                s.close()
        with Tardyd(conf) as d:
            expect(udp_round_trip(port) == b"dgram", "after a restart")
    finally:
        up.close()


main(globals())

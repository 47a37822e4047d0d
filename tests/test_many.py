#!/usr/bin/env python3
"""10,000 concurrent proxied connections (issue 8).

One tardyd, one proxy, an echo upstream in a child process (this file run
with --echo) and every client in this process on non-blocking sockets
under one selector. All the connections are opened, each echoes a few
bytes, all are held open together (tardyd's /metrics must count them
all), each echoes again, and all are closed: tardyd must log no error and
give back every descriptor.

tardyd needs two descriptors per connection, this process and the echo
child one each. The test raises its soft limit to the hard one (children
inherit it) and, when the limits or the ephemeral port range cannot hold
10,000, runs as many as they allow and then SKIPs with the measured
reason: it still fails on any error at the count it reached.
"""

import os
import resource
import selectors
import socket
import subprocess
import sys
import time

import tardytest
from tardytest import SLOW, Tardyd, expect, now, skip

TARGET = int(os.environ.get("TARDY_MANY", "10000"))
BATCH = 500             # connects in flight at once (listen backlogs: 1024)
RESERVE = 16            # descriptors tardyd keeps from its proxies (proxy.c)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def echo_main(fd):
    """Child: echo every connection accepted on the inherited listener
    until stdin closes."""
    raise_nofile()
    ls = socket.socket(fileno=fd)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, None)
    sel.register(sys.stdin, selectors.EVENT_READ, "stdin")
    while True:
        for key, _ in sel.select(1.0):
            if key.data == "stdin":
                os._exit(0)
            if key.data is None:
                while True:
                    try:
                        c, _ = ls.accept()
                    except BlockingIOError:
                        break
                    except OSError:
                        break       # EMFILE: the test's count says so
                    c.setblocking(False)
                    sel.register(c, selectors.EVENT_READ, "conn")
                continue
            c = key.fileobj
            try:
                d = c.recv(4096)
                if d:
                    c.send(d)       # a few bytes: the buffer takes them
                    continue
            except BlockingIOError:
                continue
            except OSError:
                pass
            sel.unregister(c)
            c.close()


def metric(d, name, proxy):
    st, text = d.api("GET", "/metrics")
    expect(st == 200, "GET /metrics: %s" % st)
    key = '%s{proxy="%s"} ' % (name, proxy)
    for line in text.splitlines():
        if line.startswith(key):
            return int(float(line[len(key):]))
    raise AssertionError("no %s in /metrics" % key)


def capacity(tardyd_limit, tardyd_base, self_limit, self_base, echo_limit):
    """The most connections the limits allow, and what bounds it."""
    lo, hi = (int(x) for x in open(
        "/proc/sys/net/ipv4/ip_local_port_range").read().split())
    bounds = {
        "tardyd's descriptors (limit %d, %d in use, %d kept in reserve, "
        "2 per connection)" % (tardyd_limit, tardyd_base, RESERVE):
            (tardyd_limit - tardyd_base - RESERVE - 4) // 2,
        "this process's descriptors (limit %d, %d in use)" % (
            self_limit, self_base): self_limit - self_base - 16,
        "the echo child's descriptors (limit %d)" % echo_limit:
            echo_limit - 32,
        "the ephemeral port range (%d-%d)" % (lo, hi): hi - lo - 256,
    }
    why = min(bounds, key=bounds.get)
    return bounds[why], why


class Many:
    def __init__(self, addr, n):
        self.addr, self.n = addr, n
        self.sel = selectors.DefaultSelector()
        self.socks = []
        self.errors = []

    def connect_all(self, deadline):
        for start in range(0, self.n, BATCH):
            batch = []
            for i in range(start, min(self.n, start + BATCH)):
                c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                c.setblocking(False)
                try:
                    c.connect(self.addr)
                except BlockingIOError:
                    pass
                self.socks.append(c)
                batch.append(c)
                self.sel.register(c, selectors.EVENT_WRITE, i)
            left = len(batch)
            while left and now() < deadline:
                for key, _ in self.sel.select(0.1):
                    c = key.fileobj
                    err = c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        self.errors.append("connect %d: %s" % (
                            key.data, os.strerror(err)))
                    self.sel.unregister(c)
                    left -= 1
            expect(not left, "%d connects still pending" % left)
            expect(not self.errors, "errors: %s" % self.errors[:5])

    def echo_all(self, tag, deadline):
        """Every connection sends 12 bytes and must get them back."""
        want = {}
        for i, c in enumerate(self.socks):
            msg = b"%s%09d" % (tag, i)
            try:
                c.send(msg)
            except OSError as e:
                self.errors.append("send %d: %s" % (i, e))
                continue
            want[c] = [msg, b"", i]
            self.sel.register(c, selectors.EVENT_READ)
        while want and now() < deadline:
            for key, _ in self.sel.select(0.1):
                c = key.fileobj
                msg, got, i = want[c]
                try:
                    data = c.recv(64)
                except BlockingIOError:
                    continue
                except OSError as e:
                    data = None
                    self.errors.append("recv %d: %s" % (i, e))
                if not data:
                    if data is not None:
                        self.errors.append("connection %d closed" % i)
                    self.sel.unregister(c)
                    del want[c]
                    continue
                got += data
                want[c][1] = got
                if len(got) >= len(msg):
                    if got != msg:
                        self.errors.append("%d got %r" % (i, got))
                    self.sel.unregister(c)
                    del want[c]
        for c, (msg, got, i) in list(want.items())[:5]:
            self.errors.append("no echo on %d (got %r)" % (i, got))
        for c in want:
            self.sel.unregister(c)
        expect(not self.errors, "%s round: %d errors: %s" % (
            tag.decode(), len(self.errors), self.errors[:5]))

    def close(self):
        for c in self.socks:
            c.close()
        self.sel.close()


def test_ten_thousand_connections():
    self_limit = raise_nofile()
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(4096)
    echo = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--echo",
         str(ls.fileno())], stdin=subprocess.PIPE,
        pass_fds=(ls.fileno(),))
    d = None
    many = None
    try:
        d = Tardyd("[proxy many]\nlisten = 127.0.0.1:0\nupstream = "
                   "127.0.0.1:%d\n" % ls.getsockname()[1],
                   args=("--exit-with-parent",))
        pid = d.proc.pid
        base = fd_count(pid)
        tardyd_limit = resource.prlimit(pid, resource.RLIMIT_NOFILE)[0]
        echo_limit = resource.prlimit(echo.pid, resource.RLIMIT_NOFILE)[0]
        cap, why = capacity(tardyd_limit, base, self_limit,
                            fd_count(os.getpid()), echo_limit)
        n = min(TARGET, cap)
        if n < 100:
            skip("only %d connections possible, bounded by %s" % (n, why))
        t0 = now()
        deadline = t0 + 45 * SLOW
        many = Many(d.proxy_addr("many")[1], n)
        many.connect_all(deadline)
        t_conn = now() - t0
        many.echo_all(b"a", deadline)
        active = metric(d, "tardy_connections_active", "many")
        expect(active == n, "tardyd counts %d open connections of %d" %
               (active, n))
        fds = fd_count(pid)
        rss = int([ln.split()[1] for ln in open("/proc/%d/status" % pid)
                   if ln.startswith("VmRSS:")][0])
        many.echo_all(b"b", deadline)
        t_echo = now() - t0
        many.close()
        many = None
        wait = now() + 20 * SLOW
        while metric(d, "tardy_connections_active", "many") and \
                now() < wait:
            time.sleep(0.05)
        expect(metric(d, "tardy_connections_active", "many") == 0,
               "connections left open in tardyd")
        failed = metric(d, "tardy_connections_failed_total", "many")
        expect(failed == 0, "%d connections failed" % failed)
        while fd_count(pid) > base and now() < wait:
            time.sleep(0.05)
        expect(fd_count(pid) == base, "tardyd holds %d descriptors, %d at "
               "start" % (fd_count(pid), base))
        rc = d.stop()
        log = d.log()
        bad = [ln for ln in log.splitlines() if "pausing" in ln or
               "cannot" in ln or "Sanitizer" in ln or "error" in ln]
        expect(rc == 0 and not bad, "tardyd exit %s, log: %s" % (rc, bad[:5]))
        print("# %d concurrent connections: all open in %.1f s, two echo "
              "rounds done at %.1f s; tardyd held %d descriptors and %d "
              "KiB RSS with all open" % (n, t_conn, t_echo, fds, rss))
        if n < TARGET:
            skip("reached %d concurrent connections without an error, not "
                 "%d: bounded by %s" % (n, TARGET, why))
    finally:
        if many is not None:
            many.close()
        if d is not None:
            d.close()
        echo.stdin.close()
        try:
            echo.wait(10)
        except subprocess.TimeoutExpired:
            echo.kill()
            echo.wait()
        ls.close()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--echo":
        echo_main(int(sys.argv[2]))
    else:
        tardytest.main(globals(), timeout=90)

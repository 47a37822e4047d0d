#!/usr/bin/env python3
"""Resource exhaustion and faults (issue 8).

Each test starts a real tardyd on loopback and pushes one resource to its
end: descriptors (a 64-descriptor limit set on the running daemon with
prlimit), memory (peers that never read), peers that die mid-transfer,
the control API under a thousand streaming connections, a storm of
reloads and ten thousand toxic changes. What is asserted is what a client
or an operator sees: bytes echoed, connections refused or kept, the
daemon's log, its resident memory (/proc/PID/status) and its descriptor
count (/proc/PID/fd), which must come back to where they started.

Every loop is bounded in iterations and in time; everything random is
drawn from a seeded generator (TARDY_TEST_SEED, default 8), so a failure
replays. Traffic is driven by non-blocking sockets and selectors in this
process, or in a child process (this file run with --loadgen) where the
test must not share the interpreter with what it measures.

Under AddressSanitizer the RSS checks are skipped (the sanitizer's
allocator, with its redzones and quarantine, is what RSS then measures);
every other assertion holds as it is. The API test raises the descriptor
limits it can and says so if 1,000 connections do not fit.
"""

import errno
import functools
import http.client
import json
import os
import random
import resource
import select
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time

import tardytest
from tardytest import SLOW, Tardyd, echo_server, expect, now, skip

SEED = int(os.environ.get("TARDY_TEST_SEED", "8"))
KIB = 1024
# README: a direction stops reading at 256 KiB queued and a read is at
# most 64 KiB, "about 320 KiB per direction".
DIR_BOUND = 320 * KIB


# --- helpers ----------------------------------------------------------

def raise_nofile(want=None):
    """Raise our soft descriptor limit (children inherit it) towards the
    hard one; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if want is None else min(want, hard)
    if hard == resource.RLIM_INFINITY and want is None:
        target = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def proc_status(pid, key):
    """A /proc/PID/status value in KiB (VmRSS, VmHWM, ...)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (key, pid))


def rss_kib(pid):
    return proc_status(pid, "VmRSS")


def sanitized(pid):
    """Whether tardyd runs under AddressSanitizer or ThreadSanitizer: its
    RSS is then the sanitizer allocator's (redzones, a quarantine of freed
    memory, shadow memory), which says nothing about tardyd's own
    bounds."""
    with open("/proc/%d/maps" % pid) as f:
        maps = f.read()
    return "libasan" in maps or "libtsan" in maps


ASAN_RSS = "RSS under a sanitizer is its allocator's, not tardyd's"


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(cond, timeout, what):
    """Poll cond() (bounded by timeout seconds); its last value or fail."""
    deadline = now() + timeout
    while True:
        v = cond()
        if v:
            return v
        if now() > deadline:
            raise AssertionError("%s: not after %.1f s" % (what, timeout))
        time.sleep(0.02)


def percentile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p / 100.0))]


_started = []


def tardyd(*args, **kw):
    """A Tardyd that the test's @cleanup stops whatever happens."""
    kw["args"] = tuple(kw.get("args", ())) + ("--exit-with-parent",)
    d = Tardyd(*args, **kw)
    _started.append(d)
    return d


def cleanup(fn):
    """Stop every tardyd the test started, even when it fails."""
    @functools.wraps(fn)
    def run():
        try:
            fn()
        finally:
            while _started:
                _started.pop().close()
    return run


def check_exit(d):
    """Stop tardyd; it must exit 0 with no sanitizer report."""
    rc = d.stop()
    log = d.log()
    d.close()
    bad = [w for w in ("Sanitizer", "runtime error", "fatal")
           if w in log]
    expect(rc == 0 and not bad, "tardyd exited with %s (%s): %s" %
           (rc, bad, log[-3000:]))
    return log


def log_lines(d, *words):
    return [ln for ln in d.log().splitlines() if all(w in ln for w in words)]


class Api:
    """A keep-alive connection to tardyd's API that times each request."""

    def __init__(self, d, timeout=5.0):
        host, port = d.ready["api"].rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port),
                                               timeout=timeout * SLOW)
        self.times = []

    def __call__(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"User-Agent": "tardytest"}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        t0 = now()
        self.conn.request(method, path, body=data, headers=hdrs)
        r = self.conn.getresponse()
        payload = r.read()
        self.times.append(now() - t0)
        if not payload:
            return r.status, None
        try:
            return r.status, json.loads(payload)
        except ValueError:
            return r.status, payload.decode(errors="replace")

    def ok(self, method, path, body=None, status=200):
        st, b = self(method, path, body)
        expect(st == status, "%s %s: %s %r" % (method, path, st, b))
        return b

    def close(self):
        self.conn.close()


def connections(d, proxy):
    st, body = d.api("GET", "/proxies/%s/connections" % proxy)
    expect(st == 200, "connections of %s: %s %r" % (proxy, st, body))
    return body


def wait_no_connections(d, proxies, timeout=10.0):
    def empty():
        return all(not connections(d, p) for p in proxies)
    wait_for(empty, timeout, "connections of %s closed" % ",".join(proxies))


def wait_fds(pid, want, timeout=5.0):
    """Wait for tardyd's descriptor count to come back to want."""
    last = []

    def back():
        last[:] = [fd_count(pid)]
        return last[0] <= want
    try:
        wait_for(back, timeout, "fds back to %d" % want)
    except AssertionError:
        raise AssertionError("tardyd holds %d descriptors, %d at start: %s" %
                             (last[0], want, sorted(
                                 os.readlink("/proc/%d/fd/%s" % (pid, f))
                                 for f in os.listdir("/proc/%d/fd" % pid))))
    return last[0]


def listener(backlog=1024):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(backlog)
    return s


def spec(sock):
    return "%s:%d" % sock.getsockname()[:2]


def rst_close(s):
    """Close with SO_LINGER 0: the peer sees ECONNRESET."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass
    s.close()


def conf(*proxies):
    """[proxy NAME] sections from (name, upstream) pairs."""
    return "".join("[proxy %s]\nlisten = 127.0.0.1:0\nupstream = %s\n" %
                   (n, u) for n, u in proxies)


# --- descriptors --------------------------------------------------------

FD_LIMIT = 64


@cleanup
def test_fd_exhaustion_backoff_and_recovery():
    """Under a 64-descriptor limit, clients beyond what fits wait in the
    backlog: tardyd pauses accepting (logged once, no spinning) while
    keeping descriptors for the API, serves what it has, and takes the
    waiting clients, bytes intact, once descriptors are freed."""
    with echo_server() as up:
        d = tardyd(conf(("p", up.spec)))
        pid = d.proc.pid
        api = Api(d)
        api.ok("GET", "/version")
        base = fd_count(pid)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
        addr = d.proxy_addr("p")[1]

        # Connect until one is not served: that one waits in the backlog.
        served, pending = [], []
        for i in range(FD_LIMIT):
            c = socket.create_connection(addr, timeout=2 * SLOW)
            c.sendall(b"c%03d" % i)
            c.settimeout(0.5 * SLOW)
            try:
                got = c.recv(16)
            except socket.timeout:
                pending.append(c)
                break
            expect(got == b"c%03d" % i, "client %d got %r" % (i, got))
            served.append(c)
        expect(pending, "all %d clients served under a %d-descriptor limit"
               % (len(served), FD_LIMIT))
        for i in range(len(served) + 1, len(served) + 10):
            c = socket.create_connection(addr, timeout=2 * SLOW)
            c.sendall(b"c%03d" % i)
            pending.append(c)
        print("# %d descriptors at start, %d connections served under a "
              "limit of %d, %d waiting" % (base, len(served), FD_LIMIT,
                                          len(pending)))

        # Paused, not spinning, and logged once.
        cpu0 = cpu_seconds(pid)
        time.sleep(1.0)
        cpu = cpu_seconds(pid) - cpu0
        expect(cpu < 0.1, "tardyd used %.2f s of CPU in 1 s while out of "
               "descriptors" % cpu)
        pausing = log_lines(d, "proxy p:", "pausing")
        expect(len(pausing) == 1, "pausing logged %d times: %s" %
               (len(pausing), d.log()[-2000:]))

        # Existing connections and the API keep working.
        for i, c in enumerate(served):
            c.sendall(b"again")
            expect(tardytest.recv_exactly(c, 5, 2 * SLOW) == b"again",
                   "served client %d stopped echoing" % i)
        expect(api.ok("GET", "/version").get("version"),
               "GET /version on the API connection kept open")
        t0 = now()
        st, body = d.api("GET", "/version")
        expect(st == 200, "GET /version on a new connection: %s %r" %
               (st, body))
        print("# GET /version on a new API connection while out of "
              "descriptors: %.1f ms" % ((now() - t0) * 1000))
        expect(fd_count(pid) <= FD_LIMIT, "more fds than the limit")

        # Free descriptors: the waiting clients are served, in full.
        for c in served:
            c.close()
        for c in pending:
            c.settimeout(3 * SLOW)
            first = c.recv(4)
            expect(len(first) == 4 and first.startswith(b"c"),
                   "waiting client got %r" % first)
            c.sendall(b"late")
            expect(tardytest.recv_exactly(c, 4, 3 * SLOW) == b"late",
                   "waiting client stopped echoing")
        for c in pending:
            c.close()
        c = socket.create_connection(addr, timeout=2 * SLOW)
        c.sendall(b"new")
        expect(tardytest.recv_exactly(c, 3, 2 * SLOW) == b"new",
               "new connection after recovery")
        c.close()
        wait_no_connections(d, ["p"])
        expect(log_lines(d, "proxy p:", "accepting again"),
               "no 'accepting again' in the log")
        expect(len(log_lines(d, "proxy p:", "pausing")) == 1,
               "pausing logged again: %s" % d.log()[-2000:])
        wait_fds(pid, base)
        api.close()
        check_exit(d)



def tardyd_pipes(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            n += os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith(
                "pipe:")
        except OSError:
            pass
    return n


def echo_bulk(addr, data):
    """Send data through an echo and read it all back; the connection is
    returned open (a spliced direction keeps its pipe until the close)."""
    s = socket.create_connection(addr, timeout=10 * SLOW)
    t = threading.Thread(target=s.sendall, args=(data,), daemon=True)
    t.start()
    got = bytearray()
    while len(got) < len(data):
        d = s.recv(1 << 20)
        if not d:
            break
        got += d
    t.join(10 * SLOW)
    expect(bytes(got) == data, "%d of %d bytes came back, or changed" %
           (len(got), len(data)))
    return s


@cleanup
def test_bulk_copies_when_no_descriptors_for_a_pipe():
    """A bulk transfer splices through a pipe; under a descriptor limit
    with room for the connection but not for a pipe above the reserve,
    tardyd copies instead, every byte intact."""
    data = bytes(random.Random(SEED).getrandbits(8) for _ in range(1 << 16))
    data *= 64      # 4 MiB
    with echo_server() as up:
        d = tardyd(conf(("p", up.spec)))
        pid = d.proc.pid
        addr = d.proxy_addr("p")[1]
        pipes0 = tardyd_pipes(pid)
        fds0 = fd_count(pid)
        s = echo_bulk(addr, data)
        expect(tardyd_pipes(pid) == pipes0 + 4,
               "spliced without a pipe each way? %d pipe ends, %d before"
               % (tardyd_pipes(pid), pipes0))
        s.close()
        # Back to what it had before the connection (counting from after
        # the close raced with tardyd closing it at once).
        wait_fds(pid, fds0)

        # The next connection takes the two lowest free descriptors and a
        # pipe would take the next two, leaving none of the reserve (16,
        # at most a quarter of the limit) free.
        base = fd_count(pid)
        limit = base + 4
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
        s = echo_bulk(addr, data)
        expect(tardyd_pipes(pid) == pipes0,
               "made a pipe under a limit of %d: %d pipe ends, %d before"
               % (limit, tardyd_pipes(pid), pipes0))
        s.close()
        wait_fds(pid, base)
        check_exit(d)


@cleanup
def test_udp_flows_keep_the_reserve():
    """A UDP proxy's flows take a descriptor each: under a 64-descriptor
    limit they stop at the same reserve as TCP connections, so the API
    keeps answering; running out is logged once, not once a datagram,
    and flows are made again once idle ones have ended."""
    with tardytest.UdpEcho() as up:
        d = tardyd("[proxy u]\nprotocol = udp\nlisten = 127.0.0.1:0\n"
                   "upstream = %s\nflow_timeout = 300\n" % up.spec)
        pid = d.proc.pid
        api = Api(d)
        api.ok("GET", "/version")
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
        addr = d.proxy_addr("u")[1]
        clients = []
        for i in range(FD_LIMIT * 2):
            c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            c.setblocking(False)
            c.sendto(b"d%03d" % i, addr)
            clients.append(c)
        # Every answer that will come comes within a second.
        answered, waiting = 0, set(range(len(clients)))
        deadline = now() + 1.0 * SLOW
        while waiting and now() < deadline:
            ready, _, _ = select.select([clients[i] for i in waiting], [],
                                        [], max(0, deadline - now()))
            for c in ready:
                i = clients.index(c)
                answered += c.recv(16) == b"d%03d" % i
                waiting.discard(i)
        print("# %d of %d new UDP clients served under a limit of %d" %
              (answered, len(clients), FD_LIMIT))
        expect(0 < answered < len(clients), "%d of %d served" %
               (answered, len(clients)))
        expect(fd_count(pid) <= FD_LIMIT - 16, "reserve spent: %d fds open"
               % fd_count(pid))
        for _ in range(5):
            api.ok("GET", "/proxies")
        out = log_lines(d, "proxy u:", "dropping datagrams")
        expect(len(out) == 1, "logged %d times: %s" % (len(out),
                                                       d.log()[-2000:]))
        # Idle flows end after flow_timeout; new clients get flows again.
        for c in clients:
            c.close()
        time.sleep(0.6)
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(2 * SLOW)
        c.sendto(b"again", addr)
        expect(c.recv(16) == b"again", "no flow after the idle ones ended")
        c.close()
        expect(log_lines(d, "proxy u:", "making flows again"),
               "recovery not logged: %s" % d.log()[-1000:])
        check_exit(d)


@cleanup
def test_fd_exhaustion_api_clients():
    """The API's own clients can still exhaust what is left: then the API
    pauses too, logs it once (not every 100 ms), and answers again once
    descriptors are freed."""
    with echo_server() as up:
        d = tardyd(conf(("p", up.spec)))
        pid = d.proc.pid
        base = fd_count(pid)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
        clients = [socket.create_connection(d.proxy_addr("p")[1])
                   for _ in range(FD_LIMIT // 2)]
        wait_for(lambda: log_lines(d, "proxy p:", "pausing"), 5 * SLOW,
                 "proxy pausing")
        host, port = d.ready["api"].rsplit(":", 1)
        held = []
        for i in range(FD_LIMIT):
            a = socket.create_connection((host, int(port)), 2 * SLOW)
            a.sendall(b"GET /version HTTP/1.1\r\nHost: localhost\r\n"
                      b"User-Agent: tardytest\r\n\r\n")
            a.settimeout(0.5 * SLOW)
            held.append(a)
            try:
                if b" 200 " in a.recv(4096):
                    continue
            except socket.timeout:
                pass
            break
        expect(len(held) < FD_LIMIT, "API never ran out")
        waiting = held.pop()
        time.sleep(1.0)
        lines = log_lines(d, "api:", "pausing")
        expect(len(lines) == 1, "api pausing logged %d times in 1 s: %s" %
               (len(lines), lines[:3]))
        for a in held:
            a.close()
        waiting.settimeout(3 * SLOW)
        got = waiting.recv(4096)
        expect(b" 200 " in got, "the waiting API client got %r" % got)
        waiting.close()
        st, _ = d.api("GET", "/version")
        expect(st == 200, "GET /version after: %s" % st)
        print("# %d API connections served beside %d proxied ones under a "
              "limit of %d; the next waited and was served once freed" % (
                  len(held), len(connections(d, "p")), FD_LIMIT))
        for c in clients:
            c.close()
        wait_no_connections(d, ["p"])
        wait_fds(pid, base)
        check_exit(d)


# --- memory -------------------------------------------------------------

def flood(socks_w, accept_from, on_accept, quiet=0.5, limit=20.0):
    """Write as fast as possible on every socket in socks_w (and on each
    accepted socket on_accept says to write on) until no write has made
    progress for quiet seconds; accept on the listeners in accept_from
    meanwhile. Returns the bytes written."""
    sel = selectors.DefaultSelector()
    chunk = b"\xa5" * (64 * KIB)
    for s in socks_w:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_WRITE, "w")
    for ls in accept_from:
        ls.setblocking(False)
        sel.register(ls, selectors.EVENT_READ, "a")
    total = 0
    last = t0 = now()
    while now() - last < quiet and now() - t0 < limit:
        for key, _ in sel.select(0.05):
            s = key.fileobj
            if key.data == "a":
                try:
                    c, _ = s.accept()
                except BlockingIOError:
                    continue
                if on_accept(s, c):
                    c.setblocking(False)
                    sel.register(c, selectors.EVENT_WRITE, "w")
                continue
            try:
                n = s.send(chunk)
            except BlockingIOError:
                continue
            except OSError as e:
                raise AssertionError("flood: send failed: %s" % e)
            total += n
            last = now()
    sel.close()
    expect(now() - t0 < limit, "flood still moving after %.0f s" % limit)
    return total


def memory_run(n, toxics=None, what="", per_dir=DIR_BOUND,
               min_moved=DIR_BOUND):
    """n clients per proxy writing flat out through proxy "w" to an upstream
    that never reads, and n upstreams writing flat out through proxy "r"
    (and "b", when it has toxics) to clients that never read. toxics maps
    a proxy to the toxics to add first. tardyd's peak RSS above its idle
    RSS must stay under per_dir per loaded direction, once at least
    min_moved bytes per connection went through."""
    toxics = toxics or {}
    sink, source = listener(), listener()
    for ls in (sink, source):
        # Small kernel buffers on tardyd's upstream sockets: the test is
        # about tardyd's queues, not the kernel's.
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    names = {"w": sink, "r": source}
    if "b" in toxics:
        names["b"] = sink
    held = []           # accepted sockets nobody reads

    def on_accept(ls, c):
        held.append(c)
        return ls is source
    d = tardyd(conf(*[(p, spec(ls)) for p, ls in names.items()]))
    pid = d.proc.pid
    if sanitized(pid):
        d.close()
        sink.close()
        source.close()
        skip(ASAN_RSS)
    for p, ts in toxics.items():
        for t in ts:
            st, body = d.api("POST", "/proxies/%s/toxics" % p, t)
            expect(st == 200, "toxic %r: %s %r" % (t, st, body))
    clients = {p: [socket.create_connection(d.proxy_addr(p)[1])
                   for _ in range(n)] for p in names}
    for cs in clients.values():
        for c in cs:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    wait_for(lambda: all(len(connections(d, p)) == n for p in names),
             5 * SLOW, "sessions open")
    base = rss_kib(pid)
    writers = [c for p, cs in clients.items() if names[p] is sink
               for c in cs]
    written = flood(writers, [sink, source], on_accept)
    expect(len(held) == n * len(names), "upstreams accepted: %d" % len(held))
    rss, hwm = rss_kib(pid), proc_status(pid, "VmHWM")
    moved = {p: sum(c["bytes_up"] + c["bytes_down"]
                    for c in connections(d, p)) for p in names}
    ndirs = n * len(names)
    bound = ndirs * per_dir // KIB
    print("# %s: rss %d KiB idle with %d connections, %d KiB after %.1f MB "
          "written by clients (%s through tardyd); peak %d KiB: %.0f KiB "
          "per loaded direction (bound %d)" % (
              what, base, ndirs, rss, written / 1e6,
              ", ".join("%s %.1f MB" % (p, b / 1e6) for p, b in
                        sorted(moved.items())),
              hwm, (hwm - base) / ndirs, per_dir // KIB))
    for p, b in moved.items():
        expect(b > n * min_moved, "proxy %s: only %d bytes went through, "
               "too little to fill tardyd's queues" % (p, b))
    expect(hwm - base < bound, "tardyd peaked at %d KiB, %d KiB above the "
           "idle %d KiB: over the %d KiB bound for %d directions" %
           (hwm, hwm - base, base, bound, ndirs))
    # Every session is still there (backpressure, not closing, bounds
    # the queues) and freeing them all brings the descriptors back.
    for p in names:
        expect(len(connections(d, p)) == n, "proxy %s lost sessions" % p)
    for c in [c for cs in clients.values() for c in cs] + held:
        rst_close(c)
    wait_no_connections(d, list(names))
    sink.close()
    source.close()
    check_exit(d)


@cleanup
def test_memory_bound_slow_readers():
    """20 clients writing flat out to an upstream that never reads, and
    20 upstreams writing flat out to clients that never read."""
    memory_run(20, what="no toxics")


@cleanup
def test_memory_bound_through_toxics():
    """The same through toxics that hold data in small pieces: a slicer's
    few-byte pieces queued for a slow reader, held one by one by a latency
    toxic behind it, or queued by a bandwidth toxic behind it. What toxics
    hold is counted in the same 256 KiB, but held pieces sit in buffers
    rounded up to powers of two, hence twice the bound here. (Before
    issue 8 each piece kept a 1 KiB buffer of its own, and one 64 KiB read
    cut into 16-byte pieces held by a latency toxic cost 5 MB: 17.9 MB per
    direction in this test.)"""
    def slicer(stream, size):
        return {"type": "slicer", "stream": stream, "name": "slicer",
                "attributes": {"average_size": size,
                               "size_variation": size // 2}}
    memory_run(4, {
        "w": [slicer("upstream", 16)],
        "r": [slicer("downstream", 64),
              {"type": "latency", "stream": "downstream",
               "attributes": {"latency": 20}}],
        "b": [slicer("upstream", 16),
              {"type": "bandwidth", "stream": "upstream",
               "attributes": {"rate": 2000}}],
    }, what="slicer, slicer+latency, slicer+bandwidth",
        per_dir=2 * DIR_BOUND, min_moved=64 * KIB)


@cleanup
def test_memory_bound_latency():
    """A latency toxic on both streams holding everything a flat-out
    writer sends toward a reader that does not read."""
    memory_run(8, {
        "w": [{"type": "latency", "stream": "upstream",
               "attributes": {"latency": 100}}],
        "r": [{"type": "latency", "stream": "downstream",
               "attributes": {"latency": 100}}],
    }, what="latency", per_dir=2 * DIR_BOUND)



# --- peers dying --------------------------------------------------------

class Peer:
    """One end of a proxied connection, driven by DyingLab's loop."""

    def __init__(self, sock, role, idx=None):
        self.sock = sock
        self.role = role            # "client" or "upstream"
        self.idx = idx              # connection number (upstream: learnt)
        self.head = b""
        self.rx = 0
        self.plan = None            # (mode, at_bytes) if this one dies
        self.shut = False
        self.closed = False


class DyingLab:
    """n connections streaming both ways through proxy "p"; for each, a
    seeded plan kills the client or the upstream once it has received
    at_bytes: "rst" (SO_LINGER 0), "close" (close(): FIN, or RST if data
    was unread) or "half" (shutdown(SHUT_WR), then read to the end). The
    survivor closes once it sees EOF or an error, as a real peer would."""

    MODES = ("rst", "close", "half")

    def __init__(self, d, up, n, rng, max_bytes=2 << 20):
        self.d, self.up, self.n = d, up, n
        self.plans = []
        for i in range(n):
            victim = rng.choice(("client", "upstream"))
            mode = rng.choice(self.MODES)
            at = rng.choice((0, rng.randrange(1, 4096),
                             rng.randrange(4096, max_bytes)))
            self.plans.append((victim, mode, at))
        self.sel = selectors.DefaultSelector()
        self.peers = []
        self.chunk = bytes(range(256)) * 64
        self.errors = {}

    def add(self, peer):
        peer.sock.setblocking(False)
        self.peers.append(peer)
        self.sel.register(peer.sock, selectors.EVENT_READ |
                          selectors.EVENT_WRITE, peer)

    def close(self, peer, how="close"):
        if peer.closed:
            return
        peer.closed = True
        self.sel.unregister(peer.sock)
        if how == "rst":
            rst_close(peer.sock)
        else:
            peer.sock.close()

    def maybe_die(self, peer):
        if peer.plan is None or peer.rx < peer.plan[1]:
            return False
        mode, peer.plan = peer.plan[0], None
        if mode == "half":
            peer.sock.shutdown(socket.SHUT_WR)
            peer.shut = True
            self.sel.modify(peer.sock, selectors.EVENT_READ, peer)
            return False
        self.close(peer, mode)
        return True

    def on_read(self, peer):
        try:
            data = peer.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self.errors[e.errno] = self.errors.get(e.errno, 0) + 1
            self.close(peer)
            return
        if not data:
            self.close(peer)
            return
        if peer.idx is None:
            need = 4 - len(peer.head)
            peer.head += data[:need]
            data = data[need:]
            if len(peer.head) < 4:
                return
            peer.idx = int.from_bytes(peer.head, "big")
            victim, mode, at = self.plans[peer.idx]
            if victim == "upstream":
                peer.plan = (mode, at)
        peer.rx += len(data)
        self.maybe_die(peer)

    def on_write(self, peer):
        try:
            peer.sock.send(self.chunk)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as e:
            self.errors[e.errno] = self.errors.get(e.errno, 0) + 1
            self.close(peer)

    def run(self, limit=30.0):
        ls = self.up
        ls.setblocking(False)
        self.sel.register(ls, selectors.EVENT_READ, None)
        addr = self.d.proxy_addr("p")[1]
        for i in range(self.n):
            c = socket.create_connection(addr, timeout=2 * SLOW)
            c.sendall(i.to_bytes(4, "big"))
            peer = Peer(c, "client", i)
            victim, mode, at = self.plans[i]
            if victim == "client":
                peer.plan = (mode, at)
            self.add(peer)
            if self.maybe_die(peer):
                continue
        t0 = last_accept = now()
        while now() - t0 < limit:
            alive = [p for p in self.peers if not p.closed]
            if not alive and now() - last_accept > 0.5:
                break
            for key, mask in self.sel.select(0.05):
                peer = key.data
                if peer is None:
                    while True:
                        try:
                            c, _ = ls.accept()
                        except BlockingIOError:
                            break
                        last_accept = now()
                        self.add(Peer(c, "upstream"))
                    continue
                if peer.closed:
                    continue
                if mask & selectors.EVENT_READ:
                    self.on_read(peer)
                if not peer.closed and not peer.shut and \
                        mask & selectors.EVENT_WRITE:
                    self.on_write(peer)
        self.sel.unregister(ls)
        left = [p for p in self.peers if not p.closed]
        for p in left:
            self.close(p)
        self.sel.close()
        expect(not left, "%d peers still open after %.0f s: %s" % (
            len(left), limit, [(p.role, p.idx, p.rx) for p in left[:5]]))


@cleanup
def test_peers_dying_mid_transfer():
    """Clients and upstreams killed at seeded points while data flows both
    ways: tardyd neither crashes nor keeps anything."""
    rng = random.Random(SEED)
    up = listener()
    d = tardyd(conf(("p", spec(up))))
    pid = d.proc.pid
    base = fd_count(pid)
    for rnd, toxics in enumerate(([], [
            {"type": "latency", "attributes": {"latency": 5}},
            {"type": "slicer", "stream": "upstream",
             "attributes": {"average_size": 2000, "size_variation": 1000}}
    ], [
            {"type": "bandwidth", "attributes": {"rate": 4000}},
            {"type": "latency", "stream": "upstream",
             "attributes": {"latency": 2, "jitter": 2}}])):
        for t in toxics:
            st, body = d.api("POST", "/proxies/p/toxics", t)
            expect(st == 200, "toxic: %s %r" % (st, body))
        lab = DyingLab(d, up, 150, rng)
        lab.run()
        wait_no_connections(d, ["p"])
        expect(d.proc.poll() is None, "tardyd died: %s" % d.log()[-2000:])
        fds = wait_fds(pid, base)
        modes = {}
        for victim, mode, at in lab.plans:
            modes["%s-%s" % (victim, mode)] = modes.get(
                "%s-%s" % (victim, mode), 0) + 1
        print("# round %d (%s): %s; peer errors seen %s; tardyd fds %d, "
              "%d at start" % (rnd, "toxics" if toxics else "no toxics",
                               ", ".join("%s %d" % kv for kv in
                                         sorted(modes.items())),
                               {errno.errorcode.get(k, k): v for k, v in
                                lab.errors.items()}, fds, base))
        st, _ = d.api("POST", "/reset")
        expect(st == 204, "reset: %s" % st)
    up.close()
    check_exit(d)



@cleanup
def test_peers_dying_while_stalled():
    """Peers that die while stall toxics keep tardyd from reading either
    side: tardyd cannot notice until it reads again, so removing the
    stalls must clear every one of them."""
    rng = random.Random(SEED + 1)
    up = listener()
    d = tardyd(conf(("p", spec(up))))
    pid = d.proc.pid
    base = fd_count(pid)
    for stream in ("upstream", "downstream"):
        st, body = d.api("POST", "/proxies/p/toxics",
                         {"type": "stall", "stream": stream})
        expect(st == 200, "stall: %s %r" % (st, body))
    n = 40
    clients = [socket.create_connection(d.proxy_addr("p")[1])
               for _ in range(n)]
    ups = []
    up.settimeout(2 * SLOW)
    for _ in range(n):
        ups.append(up.accept()[0])
    for c in clients + ups:
        c.sendall(b"x" * rng.randrange(1, 100000))
    wait_for(lambda: len(connections(d, "p")) == n, 5 * SLOW, "sessions")
    for i in range(n):
        victim = rng.choice((clients[i], ups[i]))
        if rng.random() < 0.5:
            rst_close(victim)
        else:
            victim.close()
    time.sleep(0.2)
    held = len(connections(d, "p"))
    for stream in ("upstream", "downstream"):
        st, _ = d.api("DELETE", "/proxies/p/toxics/stall_" + stream)
        expect(st == 204, "remove stall: %s" % st)
    # The survivors see their peer's end through tardyd and close too.
    for c in clients + ups:
        if c.fileno() == -1:
            continue            # a victim
        c.settimeout(5 * SLOW)
        try:
            while c.recv(65536):
                pass
        except OSError:
            pass
        c.close()
    wait_no_connections(d, ["p"])
    fds = wait_fds(pid, base)
    print("# %d of %d sessions with a dead peer held while stalled; all "
          "gone once the stalls were removed; fds %d, %d at start" % (
              held, n, fds, base))
    up.close()
    check_exit(d)


# --- the API under data-plane load ----------------------------------------

def loadgen_main(argv):
    """Child process: n clients streaming through a proxy to an echo
    upstream whose listening socket is inherited (fd). Prints "ready"
    once every client is connected and has had one echo back, runs until
    its stdin closes (or limit seconds), then prints its counters as JSON.
    Every client keeps one chunk in flight at a time, so the load is
    bounded by tardyd's forwarding and its toxics, not by buffers."""
    args = json.loads(argv[0])
    raise_nofile()
    n, limit = args["n"], args["limit"]
    ls = socket.socket(fileno=args["fd"])
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, "listen")
    sel.register(sys.stdin, selectors.EVENT_READ, "stdin")
    chunk = b"L" * args["chunk"]
    stats = {"connected": 0, "echoed_bytes": 0, "roundtrips": 0,
             "errors": 0, "eof": 0, "upstreams": 0}
    clients = {}

    def fail(what, e):
        stats["errors"] += 1
        stats.setdefault("first_error", "%s: %s" % (what, e))
    host, port = args["proxy"].rsplit(":", 1)
    t0 = now()
    pending = []
    for i in range(n):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect((host, int(port)))
        except BlockingIOError:
            pass
        pending.append(c)
        sel.register(c, selectors.EVENT_WRITE, ("connecting", i))
    ready = False
    stop = False
    while not stop and now() - t0 < limit:
        for key, mask in sel.select(0.1):
            tag, s = key.data, key.fileobj
            if tag == "stdin":
                stop = True
                break
            if tag == "listen":
                while True:
                    try:
                        u, _ = ls.accept()
                    except BlockingIOError:
                        break
                    u.setblocking(False)
                    stats["upstreams"] += 1
                    sel.register(u, selectors.EVENT_READ, ("up", b""))
                continue
            kind = tag[0]
            if kind == "connecting":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail("connect", os.strerror(err))
                    sel.unregister(s)
                    continue
                stats["connected"] += 1
                clients[s] = [0, 0]         # bytes expected back, rounds
                s.send(chunk)
                clients[s][0] = len(chunk)
                sel.modify(s, selectors.EVENT_READ, ("client",))
            elif kind == "client":
                try:
                    d = s.recv(65536)
                except OSError as e:
                    fail("client recv", e)
                    sel.unregister(s)
                    continue
                if not d:
                    stats["eof"] += 1
                    sel.unregister(s)
                    continue
                st = clients[s]
                st[0] -= len(d)
                stats["echoed_bytes"] += len(d)
                if st[0] <= 0:
                    st[1] += 1
                    stats["roundtrips"] += 1
                    try:
                        s.send(chunk)
                    except OSError as e:
                        fail("client send", e)
                    st[0] = len(chunk)
            elif kind == "up":
                out = tag[1]
                try:
                    if mask & selectors.EVENT_READ:
                        d = s.recv(65536)
                        if not d:
                            sel.unregister(s)
                            s.close()
                            continue
                        out += d
                    if out:
                        out = out[s.send(out):]
                except BlockingIOError:
                    pass
                except OSError as e:
                    fail("upstream", e)
                    sel.unregister(s)
                    s.close()
                    continue
                sel.modify(s, selectors.EVENT_READ | (
                    selectors.EVENT_WRITE if out else 0), ("up", out))
        if not ready and all(st[1] >= 1 for st in clients.values()) and \
                len(clients) == n:
            ready = True
            print("ready %.2f" % (now() - t0), flush=True)
    stats["seconds"] = now() - t0
    print(json.dumps(stats), flush=True)
    os._exit(0)


class Loadgen:
    """Runs loadgen_main in a child process against proxy addr."""

    def __init__(self, proxy_addr, upstream, n, chunk=512, limit=60):
        args = {"proxy": proxy_addr, "fd": upstream.fileno(), "n": n,
                "chunk": chunk, "limit": limit}
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--loadgen",
             json.dumps(args)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, pass_fds=(upstream.fileno(),),
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))

    def wait_ready(self, timeout):
        line = [None]

        def read():
            line[0] = self.proc.stdout.readline()
        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(timeout)
        expect(line[0] and line[0].startswith(b"ready"),
               "load generator not ready after %.0f s: %r" %
               (timeout, line[0]))
        return float(line[0].split()[1])

    def stop(self):
        self.proc.stdin.close()
        out = self.proc.stdout.read()
        self.proc.wait(10)
        return json.loads(out.decode().strip().splitlines()[-1])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@cleanup
def test_api_latency_under_load():
    """While ~1,000 connections stream through latency, bandwidth and
    slicer toxics, every API request answers in under 100 ms."""
    soft = raise_nofile()
    n = min(1000, (soft - 100) // 2)
    if n < 100:
        skip("descriptor limit %d allows only %d connections" % (soft, n))
    up = listener(backlog=4096)
    d = tardyd(conf(("load", spec(up))))
    pid = d.proc.pid
    api = Api(d)
    for t in ({"type": "latency", "name": "lat",
               "attributes": {"latency": 20, "jitter": 10}},
              {"type": "bandwidth", "name": "bw", "stream": "upstream",
               "attributes": {"rate": 64}},
              {"type": "slicer", "name": "sl",
               "attributes": {"average_size": 128, "size_variation": 64,
                              "delay": 500}}):
        api.ok("POST", "/proxies/load/toxics", t)
    gen = Loadgen(d.ready["proxies"]["load"], up, n, chunk=1024)
    try:
        took = gen.wait_ready(30 * SLOW)
        active = len(connections(d, "load"))
        if active != n:
            st, metrics = d.api("GET", "/metrics")
            raise AssertionError(
                "%d of %d connections open; metrics: %s; load generator: "
                "%r; log: %s" % (active, n, [
                    ln for ln in metrics.splitlines()
                    if "load" in ln and "bytes" not in ln],
                    gen.stop(), d.log()[-2000:]))
        api.times = []
        cpu0 = [cpu_seconds(x) for x in (pid, gen.proc.pid, os.getpid())]
        t_start = now()
        t_end = t_start + 8.0
        i = 0
        while now() < t_end:
            body = api.ok("GET", "/proxies")
            expect("load" in body, "GET /proxies: %r" % body)
            api.ok("POST", "/proxies/load/toxics",
                   {"type": "latency", "name": "churn%d" % i,
                    "stream": "upstream" if i % 2 else "downstream",
                    "attributes": {"latency": 1}})
            api.ok("POST", "/proxies/load/toxics/churn%d" % i,
                   {"attributes": {"latency": 2}})
            api.ok("DELETE", "/proxies/load/toxics/churn%d" % i,
                   status=204)
            i += 1
            time.sleep(0.01)
        times = api.times
        cpu = [(cpu_seconds(x) - c) / (now() - t_start) * 100 for x, c in
               zip((pid, gen.proc.pid, os.getpid()), cpu0)]
        stats = gen.stop()
    finally:
        gen.kill()
    ms = [t * 1000 for t in times]
    kinds = ("GET /proxies", "POST toxic", "update toxic", "DELETE toxic")
    per = "; ".join("%s max %.1f p99 %.1f" % (
        k, max(ms[j::4]), percentile(ms[j::4], 99))
        for j, k in enumerate(kinds))
    print("# %d connections (ready in %.1f s); %d API requests under load: "
          "max %.1f ms, p99 %.1f ms, median %.1f ms (%s); load generator: "
          "%d round trips, %.1f MB echoed, %d errors; CPU: tardyd %.0f%%, "
          "load generator %.0f%%, this test %.0f%%" % (
              n, took, len(ms), max(ms), percentile(ms, 99),
              percentile(ms, 50), per, stats["roundtrips"],
              stats["echoed_bytes"] / 1e6, stats["errors"], *cpu))
    expect(stats["errors"] == 0 and stats["eof"] == 0,
           "load generator saw errors: %r" % stats)
    expect(stats["roundtrips"] > 2 * n, "too little traffic: %r" % stats)
    expect(max(ms) < 100, "slowest API request took %.1f ms" % max(ms))
    api.close()
    wait_no_connections(d, ["load"], timeout=15)
    up.close()
    check_exit(d)



# --- traffic that checks every byte ---------------------------------------

class Traffic(threading.Thread):
    """Long-lived echo connections that stream a seeded byte sequence and
    check that exactly it comes back, plus short connections opened every
    few milliseconds (send, get the echo, close). Runs in a thread with one
    selector. Errors on "strict" proxies are failures; on the others
    (toxics that close or reset), only counted."""

    WINDOW = 64 * KIB           # bytes in flight per long-lived connection

    def __init__(self, d, long_per_proxy, short_every=0.005, strict=(),
                 seed=SEED, short_timeout=10.0):
        super().__init__(daemon=True)
        self.d = d
        self.rng = random.Random(seed)
        self.strict = set(strict)
        self.short_every = short_every
        self.short_timeout = short_timeout
        self.sel = selectors.DefaultSelector()
        self.streams = []
        self.lock = threading.Lock()
        self.stopping = False
        self.errors = []
        self.tolerated = 0
        self.shorts = 0
        self.proxies = list(long_per_proxy)
        for p, k in long_per_proxy.items():
            for _ in range(k):
                c = socket.create_connection(d.proxy_addr(p)[1])
                c.setblocking(False)
                st = {"sock": c, "proxy": p, "sent": 0, "got": 0,
                      "gen": random.Random(self.rng.random()),
                      "pending": b"", "expect": bytearray()}
                self.streams.append(st)
                self.sel.register(c, selectors.EVENT_READ |
                                  selectors.EVENT_WRITE, ("long", st))

    def error(self, proxy, what):
        if proxy in self.strict:
            self.errors.append("%s: %s" % (proxy, what))
        else:
            self.tolerated += 1

    def _long(self, st, mask):
        c = st["sock"]
        if mask & selectors.EVENT_WRITE and not self.stopping:
            if not st["pending"] and st["sent"] - st["got"] < self.WINDOW:
                n = st["gen"].randrange(1, 8192)
                st["pending"] = st["gen"].randbytes(n)
            if st["pending"]:
                try:
                    w = c.send(st["pending"])
                except BlockingIOError:
                    w = 0
                except OSError as e:
                    self.error(st["proxy"], "long send: %s" % e)
                    self._drop(c)
                    return
                st["expect"] += st["pending"][:w]
                st["pending"] = st["pending"][w:]
                st["sent"] += w
        if mask & selectors.EVENT_READ:
            try:
                data = c.recv(65536)
            except BlockingIOError:
                return
            except OSError as e:
                self.error(st["proxy"], "long recv: %s" % e)
                self._drop(c)
                return
            if not data:
                self.error(st["proxy"], "long connection closed")
                self._drop(c)
                return
            want = bytes(st["expect"][:len(data)])
            if data != want:
                self.errors.append("%s: stream corrupted at byte %d" %
                                   (st["proxy"], st["got"]))
                self._drop(c)
                return
            del st["expect"][:len(data)]
            st["got"] += len(data)

    def _drop(self, c):
        try:
            self.sel.unregister(c)
        except (KeyError, ValueError):
            pass
        c.close()

    def _short_start(self):
        p = self.proxies[self.shorts % len(self.proxies)]
        self.shorts += 1
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(self.d.proxy_addr(p)[1])
        except BlockingIOError:
            pass
        msg = b"short%08d" % self.shorts
        self.sel.register(c, selectors.EVENT_WRITE,
                          ("short", {"proxy": p, "msg": msg, "got": b"",
                                     "t0": now()}))

    def _short(self, c, st, mask):
        try:
            if mask & selectors.EVENT_WRITE:
                err = c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise OSError(err, os.strerror(err))
                c.send(st["msg"])
                self.sel.modify(c, selectors.EVENT_READ, ("short", st))
                return
            data = c.recv(4096)
        except BlockingIOError:
            return
        except OSError as e:
            self.error(st["proxy"], "short: %s" % e)
            self._drop(c)
            return
        if not data:
            self.error(st["proxy"], "short closed after %r" % st["got"])
            self._drop(c)
            return
        st["got"] += data
        if st["got"] == st["msg"]:
            self._drop(c)
        elif not st["msg"].startswith(st["got"]):
            self.errors.append("%s: short got %r" % (st["proxy"], st["got"]))
            self._drop(c)

    def run(self):
        next_short = now()
        while not self.stopping:
            if self.short_every and now() >= next_short:
                self._short_start()
                next_short = now() + self.short_every
            for key, mask in self.sel.select(0.005):
                kind, st = key.data
                if kind == "long":
                    self._long(st, mask)
                else:
                    self._short(key.fileobj, st, mask)
            for key in list(self.sel.get_map().values()):
                kind, st = key.data
                if kind == "short" and now() - st["t0"] > self.short_timeout:
                    self.error(st["proxy"], "short timed out")
                    self._drop(key.fileobj)

    def finish(self, timeout=10.0):
        """Stop sending; wait until every long-lived connection got back
        all it sent; close everything. Returns bytes echoed in total."""
        self.stopping = True
        self.join(5)
        expect(not self.is_alive(), "traffic thread did not stop")
        deadline = now() + timeout
        alive = [st for st in self.streams
                 if st["sock"].fileno() != -1]
        while now() < deadline and any(st["got"] < st["sent"]
                                       for st in alive):
            for key, mask in self.sel.select(0.05):
                kind, st = key.data
                if kind == "long":
                    self._long(st, selectors.EVENT_READ)
                else:
                    self._drop(key.fileobj)
        for st in alive:
            if st["got"] < st["sent"] and st["proxy"] in self.strict:
                self.errors.append("%s: %d of %d bytes came back" % (
                    st["proxy"], st["got"], st["sent"]))
        for key in list(self.sel.get_map().values()):
            self._drop(key.fileobj)
        self.sel.close()
        return sum(st["got"] for st in self.streams)


# --- reload storms --------------------------------------------------------

@cleanup
def test_reload_storm():
    """100 SIGHUPs alternating a valid and an invalid configuration while
    traffic flows: the unchanged proxy's connections never notice."""
    with echo_server() as up:
        held = listener()       # a port in use, for a reload that fails
        d = tardyd(reload_conf(up.spec, 0))
        pid = d.proc.pid
        base_fds = fd_count(pid)
        keep = tardytest.connect(d.proxy_addr("stable"), 2 * SLOW)
        keep.sendall(b"hello")
        expect(tardytest.recv_exactly(keep, 5, 2 * SLOW) == b"hello",
               "echo through stable")
        ids = [c["id"] for c in connections(d, "stable")]
        traffic = Traffic(d, {"stable": 4}, short_every=0.01,
                          strict=("stable",))
        traffic.start()
        base_rss = rss_kib(pid)
        bad_kinds = ("syntax", "key", "address", "in use", "toxic")
        flips = 0
        for gen in range(1, 101):
            valid = gen % 2 == 0
            if valid:
                text = reload_conf(up.spec, gen)
            else:
                text = reload_conf(up.spec, gen, bad=bad_kinds[
                    (gen // 2) % len(bad_kinds)], held=spec(held))
            d.write_config(text)
            d.proc.send_signal(signal.SIGHUP)
            r = d.wait_ready(generation=gen)
            expect(r["generation"] == gen, "generation %d after SIGHUP %d"
                   % (r["generation"], gen))
            want = "ok" if valid else "failed"
            expect(r["last_reload"] == want, "reload %d (%s): last_reload "
                   "%r" % (gen, "valid" if valid else "invalid",
                           r["last_reload"]))
            msg = b"gen%03d" % gen
            keep.sendall(msg)
            got = tardytest.recv_exactly(keep, len(msg), 2 * SLOW)
            expect(got == msg, "long-lived connection after reload %d got "
                   "%r" % (gen, got))
            if valid:
                # The proxy whose settings changed still works.
                c = tardytest.connect(d.proxy_addr("flip"), 2 * SLOW)
                c.sendall(b"flip")
                expect(tardytest.recv_exactly(c, 4, 2 * SLOW) == b"flip",
                       "flip after reload %d" % gen)
                c.close()
                flips += 1
        expect(d.ready["generation"] == 100, "generation %r" %
               d.ready["generation"])
        echoed = traffic.finish()
        expect(not traffic.errors, "traffic on stable: %s" %
               traffic.errors[:5])
        now_ids = [c["id"] for c in connections(d, "stable")]
        expect(all(i in now_ids for i in ids),
               "stable's connection %s gone: %s" % (ids, now_ids))
        growth = rss_kib(pid) - base_rss
        keep.close()
        wait_no_connections(d, ["stable", "flip"])
        fds = wait_fds(pid, base_fds)
        failed = len(log_lines(d, "reload failed"))
        print("# 100 reloads (%d failed as meant, flip served after %d); "
              "%.1f MB echoed on stable meanwhile, %d short connections; "
              "rss growth %d KiB; fds %d, %d at start" % (
                  failed, flips, echoed / 1e6, traffic.shorts, growth,
                  fds, base_fds))
        expect(failed == 50, "%d reloads failed, 50 meant to" % failed)
        for why in ("syntax error", "unknown key", "invalid port",
                    "address already in use", "must be between"):
            expect(log_lines(d, why), "no reload failed with %r" % why)
        if not sanitized(pid):
            expect(growth < 2048, "rss grew %d KiB over 100 reloads" %
                   growth)
        held.close()
        check_exit(d)


def reload_conf(upstream, gen, bad=None, held=None):
    """The configuration for reload number gen: proxy "stable" never
    changes (its configured toxic does, which keeps the proxy), proxy
    "flip" changes on every valid reload (its connect_timeout: updated in
    place, as the log says). bad makes it
    invalid in one of several ways, each caught at a different stage."""
    text = ("[tardy]\nlog_level = info\n"
            "[proxy stable]\nlisten = 127.0.0.1:0\nupstream = %s\n"
            "[toxic stable lat]\ntype = latency\nstream = downstream\n"
            "latency = %d\n"
            "[proxy flip]\nlisten = 127.0.0.1:0\nupstream = %s\n"
            "connect_timeout = %d\n" % (upstream, gen % 3, upstream,
                                          1000 + gen))
    if bad == "syntax":
        text += "[proxy broken\n"
    elif bad == "key":
        text += "[proxy extra]\nlisten = 127.0.0.1:0\nupstream = %s\n" \
                "colour = blue\n" % upstream
    elif bad == "address":
        text += "[proxy extra]\nlisten = 127.0.0.1:0\n" \
                "upstream = 127.0.0.1:notaport\n"
    elif bad == "in use":
        text += "[proxy extra]\nlisten = %s\nupstream = %s\n" % (
            held, upstream)
    elif bad == "toxic":
        text += "[toxic flip bad]\ntype = latency\nlatency = -5\n"
    return text



# --- toxic churn ----------------------------------------------------------

# Toxics that keep every byte, in order: the long-lived connections check
# their echo through these. stall holds what it read until removed.
KEEPING = {
    "latency": lambda r: {"latency": r.randrange(0, 30),
                          "jitter": r.randrange(0, 10)},
    "bandwidth": lambda r: {"rate": r.randrange(100, 5000)},
    "slicer": lambda r: {"average_size": r.randrange(50, 2000),
                         "size_variation": r.randrange(0, 50),
                         "delay": r.randrange(0, 200)},
    "noop": lambda r: {},
    "stall": lambda r: {},
}
# Toxics that drop, end or reset connections: on proxy "rough", which
# only carries short connections.
ROUGH = dict(KEEPING, **{
    "limit_data": lambda r: {"bytes": r.randrange(0, 100)},
    "reset_peer": lambda r: {"timeout": r.randrange(0, 50)},
    "timeout": lambda r: {"timeout": r.randrange(0, 50)},
    "slow_close": lambda r: {"delay": r.randrange(0, 50)},
    "blackhole": lambda r: {},
})


@cleanup
def test_toxic_churn():
    """10,000 toxic additions, updates and removals through one keep-alive
    API connection on proxies carrying traffic: every byte still arrives
    in order, and nothing is left behind (connections, descriptors,
    memory)."""
    rng = random.Random(SEED)
    ops = 10000
    with echo_server() as up:
        d = tardyd(conf(("c1", up.spec), ("c2", up.spec),
                        ("rough", up.spec)))
        pid = d.proc.pid
        base_fds = fd_count(pid)
        api = Api(d)
        traffic = Traffic(d, {"c1": 3, "c2": 3, "rough": 0},
                          short_every=0.004, strict=("c1", "c2"),
                          short_timeout=15.0)
        traffic.start()
        live = {"c1": {}, "c2": {}, "rough": {}}     # name -> type
        counts = {"add": 0, "update": 0, "remove": 0}
        serial = 0
        base_rss = None
        t0 = now()
        for i in range(ops):
            if i == 1000:
                base_rss = rss_kib(pid)
            p = rng.choice(("c1", "c2", "rough"))
            kinds = ROUGH if p == "rough" else KEEPING
            names = sorted(live[p])
            op = "add" if len(names) < 2 else rng.choice(
                ("add", "update", "remove") if len(names) < 6 else
                ("update", "remove"))
            if op == "add":
                serial += 1
                typ = rng.choice(sorted(kinds))
                name = "t%d" % serial
                body = {"type": typ, "name": name,
                        "stream": rng.choice(("upstream", "downstream")),
                        "attributes": kinds[typ](rng)}
                if typ != "stall":
                    body["toxicity"] = rng.choice((1.0, 0.5))
                api.ok("POST", "/proxies/%s/toxics" % p, body)
                live[p][name] = typ
            elif op == "update":
                name = rng.choice(names)
                api.ok("POST", "/proxies/%s/toxics/%s" % (p, name),
                       {"attributes": kinds[live[p][name]](rng)})
            else:
                name = rng.choice(names)
                api.ok("DELETE", "/proxies/%s/toxics/%s" % (p, name),
                       status=204)
                del live[p][name]
            counts[op] += 1
        took = now() - t0
        for p, names in live.items():
            for name in names:
                api.ok("DELETE", "/proxies/%s/toxics/%s" % (p, name),
                       status=204)
        echoed = traffic.finish(timeout=15.0)
        expect(not traffic.errors, "traffic: %s" % traffic.errors[:5])
        ms = [t * 1000 for t in api.times]
        api.close()
        wait_no_connections(d, ["c1", "c2", "rough"])
        fds = wait_fds(pid, base_fds)
        rss = rss_kib(pid)
        print("# %d toxic operations (%s) in %.1f s, max %.1f ms, p99 %.1f "
              "ms; %.1f MB echoed intact, %d short connections (%d ended "
              "by rough toxics); rss %d KiB after, %d KiB at op 1000; fds "
              "%d, %d at start" % (
                  ops, ", ".join("%s %d" % kv for kv in sorted(
                      counts.items())), took, max(ms), percentile(ms, 99),
                  echoed / 1e6, traffic.shorts, traffic.tolerated, rss,
                  base_rss, fds, base_fds))
        if sanitized(pid):
            print("# rss growth not checked: " + ASAN_RSS)
        else:
            expect(rss - base_rss < 4096, "rss grew %d KiB during the "
                   "churn" % (rss - base_rss))
        check_exit(d)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--loadgen":
        loadgen_main(sys.argv[2:])
    else:
        tardytest.main(globals(), timeout=90)

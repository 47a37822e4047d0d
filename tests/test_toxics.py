#!/usr/bin/env python3
"""Each Toxiproxy toxic type through a real proxy (issue 4).

Every test starts tardyd with one proxy "p" in front of a Python server,
adds toxics through the HTTP API and asserts what a real client sees:
its bytes, how the stream ends and when. Tolerances are the injected
time plus a margin for scheduling on a loaded machine (+60 ms), never
wider.
"""

import socket
import statistics
import threading
import time

import tardytest
from tardytest import (Lab, Server, echo_server, expect, expect_between,
                       now, recv_exactly, rtt)

MARGIN = 0.060          # s: scheduling slack allowed on top of a delay


def read_to_end(s, timeout=5.0):
    """Read until EOF, reset or timeout: (bytes, 'eof'|'reset'|'timeout',
    seconds until the end)."""
    t0 = now()
    deadline = t0 + timeout
    out = bytearray()
    while True:
        s.settimeout(max(0.001, deadline - now()))
        try:
            d = s.recv(65536)
        except socket.timeout:
            return bytes(out), "timeout", now() - t0
        except ConnectionResetError:
            return bytes(out), "reset", now() - t0
        if not d:
            return bytes(out), "eof", now() - t0
        out += d


def sender(data, linger=3.0):
    """A server handler that sends data, then holds the connection."""
    def handler(c):
        c.sendall(data)
        time.sleep(linger)
    return handler


def collector(got):
    """A server handler that appends what it reads to got, until EOF."""
    def handler(c):
        while True:
            d = c.recv(65536)
            if not d:
                return
            got.append(d)
    return handler


def pattern(n):
    return bytes((i * 7 + i // 251) & 0xff for i in range(n))


# --- latency ------------------------------------------------------------

def test_latency_downstream():
    with echo_server() as srv, Lab(srv.spec) as lab:
        lab.add("latency", latency=200)
        s = lab.connect()
        samples = [rtt(s) for _ in range(5)]
        print("# latency 200 ms downstream: round trips %s ms" %
              ", ".join("%.1f" % (x * 1000) for x in samples))
        for x in samples:
            expect_between(x, 0.200, 0.200 + MARGIN, "round trip")
        s.close()


def test_latency_upstream():
    with echo_server() as srv, Lab(srv.spec) as lab:
        lab.add("latency", stream="upstream", latency=100)
        s = lab.connect()
        for _ in range(3):
            expect_between(rtt(s), 0.100, 0.100 + MARGIN, "round trip")
        s.close()


def test_latency_jitter_stays_in_band():
    with echo_server() as srv, Lab(srv.spec) as lab:
        lab.add("latency", latency=100, jitter=50)
        s = lab.connect()
        samples = [rtt(s) for _ in range(50)]
        s.close()
        lo, hi = min(samples), max(samples)
        print("# jitter 100±50 ms, 50 samples: min %.1f max %.1f mean %.1f "
              "stdev %.1f ms" % (lo * 1000, hi * 1000,
                                 statistics.mean(samples) * 1000,
                                 statistics.stdev(samples) * 1000))
        for x in samples:
            expect_between(x, 0.050, 0.150 + MARGIN, "jittered round trip")
        # Uniform over ±50 ms: the spread must show it, not a constant.
        expect(hi - lo > 0.050, "spread only %.1f ms" % ((hi - lo) * 1000))
        expect(statistics.stdev(samples) > 0.015, "jitter looks constant")
        expect(lo < 0.085 and hi > 0.115,
               "samples do not reach both sides of 100 ms")


# --- bandwidth ----------------------------------------------------------

def test_bandwidth_rate():
    data = pattern(200000)
    with Server(sender(data)) as srv, Lab(srv.spec) as lab:
        lab.add("bandwidth", rate=100)
        t0 = now()
        s = lab.connect()
        got = recv_exactly(s, len(data), timeout=5)
        elapsed = now() - t0
        s.close()
        print("# bandwidth 100 KB/s: 200000 B in %.3f s" % elapsed)
        expect(got == data, "got %d bytes, or corrupted" % len(got))
        expect(1.9 <= elapsed <= 2.4, "200000 B took %.3f s" % elapsed)


def test_bandwidth_upstream():
    data = pattern(50000)
    done = {}

    def sink(c):
        done["data"] = recv_exactly(c, len(data), timeout=5)
        done["end"] = now()

    with Server(sink) as srv, Lab(srv.spec) as lab:
        lab.add("bandwidth", stream="upstream", rate=50)
        s = lab.connect()
        t0 = now()
        s.sendall(data)
        deadline = now() + 5
        while "end" not in done and now() < deadline:
            time.sleep(0.01)
        s.close()
        expect(done.get("data") == data, "upstream bytes wrong")
        # 50000 B at 50 KB/s: one second from the send, never less.
        elapsed = done["end"] - t0
        expect(1.0 <= elapsed <= 1.3, "upstream 50000 B took %.4f s" %
               elapsed)


# --- slow_close ---------------------------------------------------------

def test_slow_close_delays_eof():
    def hello_bye(c):
        c.sendall(b"hello")
        c.shutdown(socket.SHUT_WR)
        time.sleep(2)

    with Server(hello_bye) as srv, Lab(srv.spec) as lab:
        lab.add("slow_close", delay=500)
        t0 = now()
        s = lab.connect()
        first = recv_exactly(s, 5, timeout=2)
        t_data = now() - t0
        data, how, _ = read_to_end(s, timeout=3)
        t_eof = now() - t0
        s.close()
        print("# slow_close 500 ms: data after %.1f ms, EOF after %.1f ms" %
              (t_data * 1000, t_eof * 1000))
        expect(first == b"hello" and data == b"", "data %r %r" % (first, data))
        expect(t_data < 0.1, "data held %.3f s: only the EOF is" % t_data)
        expect(how == "eof", "stream ended by %s" % how)
        expect_between(t_eof, 0.500, 0.500 + MARGIN, "EOF after")


def test_slow_close_without_toxic_is_prompt():
    def bye(c):
        c.shutdown(socket.SHUT_WR)
        time.sleep(2)

    with Server(bye) as srv, Lab(srv.spec) as lab:
        s = lab.connect()
        _, how, elapsed = read_to_end(s, timeout=3)
        expect(how == "eof" and elapsed < 0.1,
               "plain EOF: %s after %.3f s" % (how, elapsed))
        s.close()


# --- timeout ------------------------------------------------------------

def test_timeout_closes_idle_connection():
    with echo_server() as srv, Lab(srv.spec) as lab:
        lab.add("timeout", timeout=400)
        t0 = now()
        s = lab.connect()
        s.sendall(b"ping")     # echoed by the server, swallowed downstream
        data, how, _ = read_to_end(s, timeout=3)
        elapsed = now() - t0
        s.close()
        print("# timeout 400 ms: connection closed after %.1f ms" %
              (elapsed * 1000))
        expect(data == b"", "swallowed data arrived: %r" % data)
        expect(how == "eof", "ended by %s" % how)
        expect_between(elapsed, 0.400, 0.400 + MARGIN, "closed after")


def test_timeout_swallows_data_and_restarts_on_it():
    got = []
    with Server(collector(got)) as srv, Lab(srv.spec) as lab:
        lab.add("timeout", stream="upstream", timeout=400)
        s = lab.connect()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        # 1 MB cannot sit in buffers that small: it goes through only
        # because tardyd reads it and throws it away.
        t0 = now()
        s.sendall(b"z" * 1000000)
        t_sent = now() - t0
        time.sleep(0.2)
        s.sendall(b"more")      # data restarts the idle timer
        t_last = now()
        data, how, _ = read_to_end(s, timeout=3)
        idle = now() - t_last
        s.close()
        time.sleep(0.05)
        print("# timeout upstream: 1 MB swallowed in %.1f ms, closed "
              "%.1f ms after the last data" % (t_sent * 1000, idle * 1000))
        expect(t_sent < 1.0, "sending 1 MB took %.3f s: not read" % t_sent)
        expect(b"".join(got) == b"", "upstream received %d bytes" %
               len(b"".join(got)))
        expect(how == "eof", "ended by %s" % how)
        expect_between(idle, 0.400, 0.400 + MARGIN, "closed after idle")


def test_timeout_zero_never_closes():
    with echo_server() as srv, Lab(srv.spec) as lab:
        name = lab.add("timeout", timeout=0)
        s = lab.connect()
        s.sendall(b"ping")
        data, how, elapsed = read_to_end(s, timeout=1.0)
        expect(how == "timeout" and data == b"",
               "timeout=0: %s with %r after %.3f s" % (how, data, elapsed))
        # Still open: sending works and nothing comes back.
        s.sendall(b"pong")
        data, how, _ = read_to_end(s, timeout=0.3)
        expect(how == "timeout", "timeout=0 then %s" % how)
        lab.remove(name)
        s.close()


# --- reset_peer ---------------------------------------------------------

def test_reset_peer():
    # As Toxiproxy: the stream's first data is dropped and the connection
    # reset timeout ms later; a connection that sends nothing is left be.
    with echo_server() as srv, Lab(srv.spec) as lab:
        lab.add("reset_peer", timeout=300)
        s = lab.connect()
        s.settimeout(0.4)
        try:
            got = s.recv(10)
            raise AssertionError("idle connection ended: %r" % got)
        except socket.timeout:
            pass
        t0 = now()
        s.sendall(b"request")
        data, how, _ = read_to_end(s, timeout=3)
        elapsed = now() - t0
        print("# reset_peer 300 ms: ECONNRESET %.1f ms after the request" %
              (elapsed * 1000))
        expect(how == "reset", "ended by %s, not a reset" % how)
        expect(data == b"", "the reply passed: %r" % data)
        expect_between(elapsed, 0.300, 0.300 + MARGIN, "reset after")
        try:
            s.send(b"x")
            s.close()
        except OSError:
            pass


# --- slicer -------------------------------------------------------------

def test_slicer_many_small_reads():
    data = pattern(2000)
    with Server(sender(data)) as srv, Lab(srv.spec) as lab:
        lab.add("slicer", average_size=100, size_variation=50, delay=10000)
        s = lab.connect()
        t0 = now()
        reads = []
        buf = bytearray()
        while len(buf) < len(data) and now() - t0 < 5:
            s.settimeout(2)
            d = s.recv(65536)
            if not d:
                break
            reads.append(len(d))
            buf += d
        elapsed = now() - t0
        s.close()
        print("# slicer 100±50 B, 10 ms apart: %d reads of %s B in %.1f ms"
              % (len(reads), reads, elapsed * 1000))
        expect(bytes(buf) == data, "sliced data corrupted")
        # At most 150 B a piece: at least 14 pieces 10 ms apart.
        expect(len(reads) >= 10, "only %d reads" % len(reads))
        expect(statistics.median(reads) <= 150,
               "median read %d B" % statistics.median(reads))
        expect(elapsed >= 0.13, "2000 B sliced in only %.3f s" % elapsed)


def test_slicer_without_delay_keeps_data():
    data = pattern(300000)
    with Server(sender(data)) as srv, Lab(srv.spec) as lab:
        lab.add("slicer", average_size=1000, size_variation=999)
        s = lab.connect()
        got = recv_exactly(s, len(data), timeout=5)
        s.close()
        expect(got == data, "got %d bytes or corrupted" % len(got))


# --- limit_data ---------------------------------------------------------

def test_limit_data_downstream():
    with Server(sender(pattern(5000))) as srv, Lab(srv.spec) as lab:
        lab.add("limit_data", bytes=1000)
        s = lab.connect()
        data, how, elapsed = read_to_end(s, timeout=3)
        s.close()
        expect(how == "eof", "ended by %s after %d bytes" % (how, len(data)))
        expect(data == pattern(5000)[:1000],
               "got %d bytes, expected exactly 1000" % len(data))


def test_limit_data_upstream():
    got = []
    with Server(collector(got)) as srv, Lab(srv.spec) as lab:
        lab.add("limit_data", stream="upstream", bytes=3000)
        s = lab.connect()
        for i in range(10):
            try:
                s.sendall(pattern(1000))
            except OSError:
                break
            time.sleep(0.01)
        _, how, _ = read_to_end(s, timeout=3)
        s.close()
        srv.close()
        total = b"".join(got)
        expect(how in ("eof", "reset"), "client: %s" % how)
        expect(total == pattern(1000) * 3,
               "upstream got %d bytes, expected exactly 3000" % len(total))


# --- noop ---------------------------------------------------------------

def test_noop_passes_data():
    data = pattern(1000000)
    with echo_server() as srv, Lab(srv.spec) as lab:
        lab.add("noop")
        lab.add("noop", stream="upstream")
        s = lab.connect()
        t = threading.Thread(target=s.sendall, args=(data,))
        t.start()
        got = recv_exactly(s, len(data), timeout=10)
        t.join(5)
        expect(got == data, "noop changed the data (%d bytes)" % len(got))
        expect(rtt(s) < 0.05, "noop delays")
        s.close()


# --- removing and updating toxics on open connections -------------------

def test_remove_latency_restores_flow():
    with echo_server() as srv, Lab(srv.spec) as lab:
        name = lab.add("latency", latency=300)
        s = lab.connect()
        expect_between(rtt(s), 0.300, 0.300 + MARGIN, "with latency")
        # Data held when the toxic goes is released at once.
        s.sendall(b"held")
        time.sleep(0.1)
        t0 = now()
        lab.remove(name)
        got = recv_exactly(s, 4, timeout=2)
        released = now() - t0
        expect(got == b"held", "held data lost: %r" % got)
        expect(released < 0.1, "held data released after %.3f s" % released)
        fast = rtt(s)
        print("# latency removed: held data out after %.1f ms, then round "
              "trip %.1f ms" % (released * 1000, fast * 1000))
        expect(fast < 0.05, "round trip %.3f s after removal" % fast)
        s.close()


def test_remove_timeout_closes_its_connections():
    with echo_server() as srv, Lab(srv.spec) as lab:
        name = lab.add("timeout", timeout=0)
        s = lab.connect()
        s.sendall(b"lost")
        time.sleep(0.1)
        t0 = now()
        lab.remove(name)
        data, how, _ = read_to_end(s, timeout=2)
        elapsed = now() - t0
        s.close()
        expect(data == b"" and how == "eof",
               "after removal: %s with %r" % (how, data))
        expect(elapsed < 0.1, "closed %.3f s after removal" % elapsed)
        # New connections flow again.
        s = lab.connect()
        expect(rtt(s) < 0.05, "new connection after removal")
        s.close()


def test_update_latency_at_once():
    with echo_server() as srv, Lab(srv.spec) as lab:
        name = lab.add("latency", latency=300)
        s = lab.connect()
        expect_between(rtt(s), 0.300, 0.300 + MARGIN, "before update")
        t = lab.update(name, latency=50)
        expect(t["attributes"]["latency"] == 50, "update answered %r" % t)
        expect_between(rtt(s), 0.050, 0.050 + MARGIN, "after update")
        s.close()


def test_update_timeout_at_once():
    with echo_server() as srv, Lab(srv.spec) as lab:
        name = lab.add("timeout", timeout=0)
        s = lab.connect()
        _, how, _ = read_to_end(s, timeout=0.3)
        expect(how == "timeout", "timeout=0 closed: %s" % how)
        t0 = now()
        lab.update(name, timeout=200)
        _, how, _ = read_to_end(s, timeout=3)
        elapsed = now() - t0
        s.close()
        expect(how == "eof", "ended by %s" % how)
        expect_between(elapsed, 0.200, 0.200 + MARGIN, "closed after update")


def test_update_bandwidth_at_once():
    data = pattern(150000)
    with Server(sender(data)) as srv, Lab(srv.spec) as lab:
        name = lab.add("bandwidth", rate=10)
        s = lab.connect()
        first = recv_exactly(s, 5000, timeout=2)
        lab.update(name, rate=1000)
        t0 = now()
        rest = recv_exactly(s, len(data) - 5000, timeout=5)
        elapsed = now() - t0
        s.close()
        expect(first + rest == data, "data corrupted")
        # At 10 KB/s the rest would take 14.5 s; at 1000 KB/s 0.15 s.
        expect(elapsed < 0.5, "rest took %.3f s after the update" % elapsed)


def test_toxics_act_on_existing_connections():
    with echo_server() as srv, Lab(srv.spec) as lab:
        s = lab.connect()
        expect(rtt(s) < 0.05, "before any toxic")
        lab.add("latency", latency=200)
        expect_between(rtt(s), 0.200, 0.200 + MARGIN, "latency added later")
        s2 = lab.connect()
        lab.add("limit_data", bytes=2)
        s2.sendall(b"abcdef")
        data, how, _ = read_to_end(s2, timeout=2)
        expect(how == "eof" and data == b"ab",
               "limit_data added later: %s %r" % (how, data))
        s.close()
        s2.close()


def stream_through(lab, data, at=None):
    """Send data through an echo with a writer thread, read it all back,
    then half-close: (echoed bytes, how it ended). at: {offset: fn},
    each fn called once that much has been echoed."""
    s = lab.connect(timeout=10)
    at = dict(at or {})

    def writer():
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    got = bytearray()
    s.settimeout(10)
    how = "timeout"
    while True:
        for off in sorted(at):
            if len(got) >= off:
                at.pop(off)()
        try:
            d = s.recv(1 << 20)
        except socket.timeout:
            break
        if not d:
            how = "eof"
            break
        got += d
    t.join(5)
    s.close()
    return bytes(got), how


def test_bulk_transfer_intact_with_half_close():
    """16 MiB each way through an echo, the upload ended by shutdown():
    every byte back in order, then EOF (the no-toxic bulk path)."""
    data = pattern(16 << 20)
    with echo_server() as srv, Lab(srv.spec) as lab:
        got, how = stream_through(lab, data)
        expect(how == "eof" and len(got) == len(data),
               "%s after %d of %d bytes" % (how, len(got), len(data)))
        expect(got == data, "bytes changed on the way")


def test_toxics_added_mid_bulk_transfer():
    """Toxics added and removed while 16 MiB stream both ways act on the
    rest of the stream, and no byte is lost, duplicated or reordered."""
    data = pattern(16 << 20)
    with echo_server() as srv, Lab(srv.spec) as lab:
        names = []

        def add():
            names.append(lab.add("slicer", stream="upstream",
                                 average_size=3000, size_variation=1000))
            names.append(lab.add("latency", latency=5))

        def remove():
            for n in names:
                lab.remove(n)
        got, how = stream_through(lab, data, {4 << 20: add,
                                              10 << 20: remove})
        expect(how == "eof" and len(got) == len(data),
               "%s after %d of %d bytes" % (how, len(got), len(data)))
        expect(got == data, "bytes changed on the way")
        acted = [e for e in lab.events() if e["type"] == "toxic_acted"]
        expect(len(acted) == 2, "toxics acted %d times" % len(acted))


if __name__ == "__main__":
    tardytest.main(globals())

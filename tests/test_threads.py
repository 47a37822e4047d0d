"""Worker threads: connections on every loop, one behaviour.

With threads > 1 the main loop accepts and numbers each connection and a
worker serves it for its whole life (src/worker.c). What a client sees
must not depend on that: the same seed makes the same decisions whichever
loop serves a connection and however connections overlap; a toxic added,
changed or removed through the API acts on every worker's connections
before the API answers; a reload and a shutdown close what they must on
every worker, and nothing is left behind. Every test here runs 4 loops on
whatever CPUs the machine has (2 in CI), so loops share CPUs.
"""

import os
import random
import selectors
import signal
import socket
import tempfile
import threading
import time

import tardytest as T
from tardytest import Lab, Tardyd, echo_server, expect, now, rtt

THREADS = ("--threads", "4")


def loops_of(d, name, closed=0):
    """{connection id: loop} of a proxy's connections (closed: as well
    the last N closed ones)."""
    st, conns = d.api("GET", "/proxies/%s/connections?closed=%d" %
                      (name, closed))
    expect(st == 200, "connections: %s %r" % (st, conns))
    return {c["id"]: c["loop"] for c in conns}


def wait_for(cond, timeout, what):
    deadline = now() + timeout * T.SLOW
    while now() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


# --- determinism ---------------------------------------------------------

NCONNS = 200


def decisions(threads, parallel):
    """Every toxic decision of NCONNS connections, seed 7, and the loops
    that served them."""
    with echo_server() as srv, \
            Lab(srv.spec, args=("-s", "7", "--threads", threads)) as lab:
        lab.add("latency", name="jit", latency=1, jitter=1, toxicity=0.5)
        lab.add("noop", name="coin", stream="upstream", toxicity=0.3)
        # Ordinals counted at accept: every 3rd new connection, the first
        # 50 of them.
        lab.add("noop", name="third", every=3, first=50)
        T.run_connections(lab.connect, NCONNS, 25 if parallel else 0)
        d = lab.decisions()
        loops = set(loops_of(lab.d, "p", closed=NCONNS).values())
    expect(len(d) == 3 * NCONNS, "%d decisions for %d connections" %
           (len(d), NCONNS))
    return d, loops


def test_same_decisions_on_four_loops_as_on_one():
    one, loops1 = decisions("1", parallel=False)
    four, loops4 = decisions("4", parallel=True)
    print("# loops serving: threads 1 %s, threads 4 %s" %
          (sorted(loops1), sorted(loops4)))
    expect(loops1 == {0}, "threads 1 served on loops %r" % loops1)
    expect(loops4 == {1, 2, 3, 4}, "threads 4 served on loops %r" % loops4)
    third = sorted(c for (c, t), v in four.items() if t == "third" and v[0])
    expect(third == list(range(1, 50, 3)),
           "every=3 first=50 acted on %r" % third[:20])
    diff = [k for k in one if one[k] != four.get(k)]
    expect(not diff, "same seed, %d decisions differ, e.g. %r: %r vs %r" %
           (len(diff), diff[:1], [one[k] for k in diff[:1]],
            [four.get(k) for k in diff[:1]]))


# --- the API acts on every worker ----------------------------------------

def test_toxic_acts_on_every_loop_before_the_api_answers():
    with echo_server() as srv, Lab(srv.spec, args=THREADS) as lab:
        socks = [lab.connect() for _ in range(16)]
        for s in socks:
            rtt(s)
        loops = set(loops_of(lab.d, "p").values())
        expect(loops == {1, 2, 3, 4}, "16 connections on loops %r" % loops)
        lab.add("latency", name="slow", latency=200)
        # Sent right after the answer: held on every connection.
        for s in socks:
            s.sendall(b"x")
        t0 = now()
        for s in socks:
            expect(T.recv_exactly(s, 1) == b"x", "echo")
        took = now() - t0
        expect(took >= 0.200, "latency added: 16 echoes back in %.1f ms"
               % (took * 1000))
        lab.update("slow", latency=0)
        worst = max(rtt(s) for s in socks)
        expect(worst < 0.1, "latency 0: a round trip took %.1f ms" %
               (worst * 1000))
        lab.update("slow", latency=150)
        for s in socks:
            expect(rtt(s) >= 0.150, "latency updated: not held")
        lab.remove("slow")
        worst = max(rtt(s) for s in socks)
        expect(worst < 0.1, "latency removed: a round trip took %.1f ms" %
               (worst * 1000))
        for s in socks:
            s.close()


# --- toxic churn under 1,000 streaming connections -----------------------

class EchoLoop:
    """A selector echo server on loopback for many connections at once."""

    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(2048)
        self.ls.setblocking(False)
        self.sel.register(self.ls, selectors.EVENT_READ)
        self.spec = "127.0.0.1:%d" % self.ls.getsockname()[1]
        self.stop = False
        self.pending = {}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            for key, mask in self.sel.select(0.1):
                if key.fileobj is self.ls:
                    try:
                        c, _ = self.ls.accept()
                    except BlockingIOError:
                        continue
                    c.setblocking(False)
                    self.pending[c] = b""
                    self.sel.register(c, selectors.EVENT_READ)
                    continue
                c = key.fileobj
                if mask & selectors.EVENT_READ:
                    try:
                        data = c.recv(65536)
                    except (BlockingIOError, ConnectionError):
                        data = None
                    if not data:
                        if data is not None or c not in self.pending:
                            self._drop(c)
                            continue
                        data = b""
                    self.pending[c] += data
                if self.pending.get(c):
                    try:
                        n = c.send(self.pending[c])
                        self.pending[c] = self.pending[c][n:]
                    except BlockingIOError:
                        pass
                    except ConnectionError:
                        self._drop(c)
                        continue
                want = selectors.EVENT_READ
                if self.pending[c]:
                    want |= selectors.EVENT_WRITE
                self.sel.modify(c, want)

    def _drop(self, c):
        self.sel.unregister(c)
        self.pending.pop(c, None)
        c.close()

    def close(self):
        self.stop = True
        self.thread.join(5)
        for c in list(self.pending):
            self._drop(c)
        self.sel.unregister(self.ls)
        self.ls.close()
        self.sel.close()


def fd_list(pid):
    out = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            out.append(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except OSError:
            pass
    return sorted(out)


def fds_and_rss(pid):
    nfd = len(os.listdir("/proc/%d/fd" % pid))
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return nfd, int(line.split()[1])
    raise AssertionError("no VmRSS")


PATTERN = bytes(range(256)) * 300


def sanitized(pid):
    with open("/proc/%d/maps" % pid) as f:
        maps = f.read()
    return "libasan" in maps or "libtsan" in maps


def stream_round(addr, n, seconds):
    """n connections each echoing a counted stream for seconds; returns
    when every byte sent came back, in order."""
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(n):
        s = T.connect(addr, timeout=10)
        s.setblocking(False)
        st = {"s": s, "sent": 0, "got": 0, "seed": i}
        conns.append(st)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, st)
    chunk = bytes(range(256)) * 16          # 4 KiB, position-checkable
    end = now() + seconds
    deadline = end + 30 * T.SLOW
    sending = True
    while now() < deadline:
        if sending and now() >= end:
            sending = False
            for st in conns:
                sel.modify(st["s"], selectors.EVENT_READ, st)
        if not sending and all(st["got"] == st["sent"] for st in conns):
            break
        for key, mask in sel.select(0.05):
            st = key.data
            if mask & selectors.EVENT_WRITE and sending and \
                    st["sent"] - st["got"] < 64 * 1024:
                off = st["sent"] % 256
                try:
                    st["sent"] += st["s"].send(chunk[off:off + 4096 - 256])
                except BlockingIOError:
                    pass
            if mask & selectors.EVENT_READ:
                try:
                    data = st["s"].recv(65536)
                except BlockingIOError:
                    continue
                expect(data, "connection %d closed after %d of %d bytes" %
                       (st["seed"], st["got"], st["sent"]))
                off = st["got"] % 256
                expect(data == PATTERN[off:off + len(data)],
                       "connection %d: bytes out of order at %d" %
                       (st["seed"], st["got"]))
                st["got"] += len(data)
    short = [st for st in conns if st["got"] != st["sent"]]
    expect(not short, "%d connections short, e.g. %d of %d bytes" %
           (len(short), short[0]["got"] if short else 0,
            short[0]["sent"] if short else 0))
    total = sum(st["sent"] for st in conns)
    for st in conns:
        sel.unregister(st["s"])
        st["s"].close()
    sel.close()
    return total


def test_listing_connections_as_they_close():
    """GET /connections lists a worker's closing connections, toxics and
    all, while that worker ends them: the listing shares nothing with
    them (under TSan, a listing that shared the closed connection's list
    of toxics with the worker freeing it was a data race)."""
    with echo_server() as srv, Lab(srv.spec, args=THREADS) as lab:
        lab.add("noop", name="seen", stream="upstream")
        stop = threading.Event()
        errors = []
        shorts = [0]

        def streams():
            try:
                stream_round(lab.addr, 8, 3.0)
            except Exception as e:  # reported below
                errors.append(e)

        def short():
            try:
                while not stop.is_set() and shorts[0] < 20000:
                    s = lab.connect()
                    rtt(s)
                    s.close()
                    shorts[0] += 1
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=streams)] + \
            [threading.Thread(target=short) for _ in range(4)]
        for t in threads:
            t.start()
        listings = closed = 0
        end = now() + 3.0
        try:
            while now() < end and not errors:
                st, conns = lab.d.api("GET", "/proxies/p/connections")
                expect(st == 200, "connections: %s %r" % (st, conns))
                for c in conns:
                    if c["state"] == "closed":
                        closed += 1
                        expect(c["toxics"] == ["seen"], "closed %r" % c)
                listings += 1
        finally:
            stop.set()
            for t in threads:
                t.join(60 * T.SLOW)
        expect(not errors, "clients failed: %r" % errors[:3])
        print("# %d listings beside %d short connections and 8 streams; "
              "%d closing connections listed" % (listings, shorts[0],
                                                 closed))
        # Lab's exit: tardyd exits 0 with no sanitizer report.


def test_toxic_churn_under_1000_streams():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        raise AssertionError("needs 4096 descriptors, the hard limit is %d"
                             % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    n = 1000
    srv = EchoLoop()
    lab = Lab(srv.spec, args=THREADS)
    try:
        pid = lab.d.proc.pid
        # A first round grows the allocator's arenas: the baseline.
        stream_round(lab.addr, n, 0.5)
        wait_for(lambda: not loops_of(lab.d, "p"), 10, "connections gone")
        fd0, rss0 = fds_and_rss(pid)
        fds0 = fd_list(pid)
        rng = random.Random(17)
        ops = {"n": 0, "took": [], "error": None}
        names = []
        done = threading.Event()

        def churn():
            while not done.is_set() and ops["n"] < 1000:
                t0 = now()
                try:
                    change()
                except Exception as e:  # reported below
                    ops["error"] = e
                    return
                ops["took"].append(now() - t0)
                time.sleep(0.005)

        def change():
            ops["n"] += 1
            op = rng.random()
            if names and op < 0.3:
                lab.remove(names.pop(rng.randrange(len(names))))
            elif names and op < 0.6:
                lab.update(rng.choice(names), latency=rng.randrange(0, 5))
            else:
                name = "t%d" % ops["n"]
                kind = rng.choice(("latency", "slicer", "noop"))
                if kind == "latency":
                    lab.add("latency", name=name,
                            stream=rng.choice(("upstream", "downstream")),
                            latency=rng.randrange(0, 5))
                elif kind == "slicer":
                    lab.add("slicer", name=name, average_size=512,
                            size_variation=256, delay=0)
                else:
                    lab.add("noop", name=name, toxicity=0.5)
                names.append(name)

        churner = threading.Thread(target=churn)
        churner.start()
        try:
            total = stream_round(lab.addr, n, 3.0)
        finally:
            done.set()
            churner.join(30)
        expect(ops["error"] is None, "API change failed: %r" % ops["error"])
        took = sorted(ops["took"])
        print("# %d connections, %.1f MB echoed; %d API changes, each "
              "answered in %.1f ms median, %.1f ms at most" %
              (n, total / 1e6, ops["n"], took[len(took) // 2] * 1000,
               took[-1] * 1000))
        expect(ops["n"] >= 50, "only %d API changes" % ops["n"])
        for name in names:
            lab.remove(name)
        wait_for(lambda: not loops_of(lab.d, "p"), 10, "connections gone")
        try:
            wait_for(lambda: fds_and_rss(pid)[0] == fd0, 5,
                     "descriptors back to %d" % fd0)
        except AssertionError:
            raise AssertionError("descriptors: %r, were %r" %
                                 (fd_list(pid), fds0))
        peak = fds_and_rss(pid)[1]
        # The toxics held a few hundred MB at the peak; a second after the
        # last connection, the loops give the free memory back.
        if sanitized(pid):
            print("# RSS not checked: under a sanitizer it is the "
                  "sanitizer's allocator's")
        else:
            wait_for(lambda: fds_and_rss(pid)[1] <= rss0 + 4096, 5,
                     "RSS back from %d KiB to %d KiB" % (peak, rss0))
        fd1, rss1 = fds_and_rss(pid)
        print("# tardyd: %d descriptors before and after; RSS %d KiB at "
              "rest, %d KiB with the connections just gone, then %d KiB" %
              (fd0, rss0, peak, rss1))
        lab.close(check=True)
    finally:
        srv.close()
        lab.d.close()


# --- reload and shutdown --------------------------------------------------

CONF = """[proxy a]
listen = 127.0.0.1:0
upstream = %s

[proxy b]
listen = 127.0.0.1:0
upstream = %s
"""


def test_reload_and_shutdown_with_connections_on_every_loop():
    with echo_server() as one, echo_server() as two, \
            T.tagged_server(b"two-") as tagged:
        d = Tardyd(CONF % (one.spec, two.spec), args=THREADS)
        try:
            a = [T.connect(d.proxy_addr("a")) for _ in range(8)]
            b = [T.connect(d.proxy_addr("b")) for _ in range(8)]
            for s in a + b:
                rtt(s)
            for name in ("a", "b"):
                loops = set(loops_of(d, name).values())
                expect(loops == {1, 2, 3, 4}, "%s on loops %r" %
                       (name, loops))
            # b gets a new upstream: its connections close on every loop,
            # a's stay.
            d.write_config(CONF % (one.spec, tagged.spec))
            d.reload()
            d.wait_ready(generation=1)
            for s in b:
                T.expect_closed(s)
            for s in a:
                rtt(s)
            s = T.connect(d.proxy_addr("b"))
            T.roundtrip_tag(s, b"two-")
            s.close()
            expect(sorted(loops_of(d, "a")) == list(range(1, 9)),
                   "a's connections after the reload: %r" %
                   loops_of(d, "a"))
            # Shutdown with a's connections open on every worker.
            t0 = now()
            rc = d.stop(signal.SIGTERM)
            took = now() - t0
            log = d.log()
            expect(rc == 0, "exit status %r: %s" % (rc, log[-2000:]))
            expect(took < 2.0 * T.SLOW, "shutdown took %.2f s" % took)
            expect("Sanitizer" not in log and "runtime error" not in log,
                   "sanitizer report: %s" % log[-3000:])
            for s in a:
                T.expect_closed(s)
                s.close()
            for s in b:
                s.close()
        finally:
            d.close()


# --- the setting -----------------------------------------------------------

def test_threads_setting():
    with echo_server() as srv:
        for args, env, want in ((("--threads", "1"), {}, {0}),
                                (("--threads", "3"), {}, {1, 2, 3}),
                                ((), {"TARDY_THREADS": "2"}, {1, 2}),
                                (("--threads", "1"), {"TARDY_THREADS": "3"},
                                 {0})):
            e = dict(os.environ)
            e.pop("TARDY_THREADS", None)
            e.update(env)
            d = Tardyd("[proxy p]\nlisten = 127.0.0.1:0\nupstream = %s\n" %
                       srv.spec, args=args, env=e)
            try:
                socks = [T.connect(d.proxy_addr("p")) for _ in range(6)]
                for s in socks:
                    rtt(s)
                got = set(loops_of(d, "p").values())
                expect(got == want, "%r %r: loops %r, not %r" %
                       (args, env, got, want))
                for s in socks:
                    s.close()
            finally:
                d.close()


def test_bad_threads_are_named():
    import subprocess
    cases = (
        (["--threads", "0"], {}, "invalid threads \"0\""),
        (["--threads", "many"], {}, "invalid threads \"many\""),
        (["--threads", "257"], {}, "invalid threads \"257\""),
        ([], {"TARDY_THREADS": "-1"}, "TARDY_THREADS: invalid value \"-1\""),
    )
    for args, env, want in cases:
        e = dict(os.environ)
        e.update(env)
        r = subprocess.run([T.TARDYD, "-t", "-p", "p=127.0.0.1:0=127.0.0.1:9"]
                           + args, env=e, capture_output=True, text=True,
                           timeout=10)
        expect(r.returncode != 0 and want in r.stderr,
               "%r %r: exit %d, %r" % (args, env, r.returncode, r.stderr))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bad.conf")
        with open(path, "w") as f:
            f.write("[tardy]\nthreads = lots\n")
        r = subprocess.run([T.TARDYD, "-t", "-c", path], capture_output=True,
                           text=True, timeout=10)
    expect(r.returncode != 0 and "bad.conf:2: threads: invalid value "
           "\"lots\"" in r.stderr, "config: exit %d, %r" %
           (r.returncode, r.stderr))


if __name__ == "__main__":
    T.main(globals(), timeout=120)

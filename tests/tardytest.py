"""Shared helpers for tardy's Python integration tests.

Each test script defines test_* functions and ends with
``tardytest.main(globals())``, which runs them in order and reports TAP
(one line per test, read by automake's tap-driver). Every test runs under
an alarm so a hang fails fast instead of stalling the suite.

Everything here talks to real sockets on loopback only.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

TARDYD = os.environ.get("TARDYD", os.path.join(os.getcwd(), "tardyd"))
TARDYCTL = os.environ.get("TARDYCTL", os.path.join(os.getcwd(), "tardyctl"))
TOP_SRCDIR = os.environ.get("TOP_SRCDIR", os.getcwd())
# Under AddressSanitizer everything is slower: start-up waits scale, the
# assertions on injected timing do not.
SLOW = float(os.environ.get("TARDY_TEST_SLOW", "1"))


def now():
    return time.monotonic()


class Tardyd:
    """A tardyd started on ephemeral ports, stopped (by PID) on exit."""

    def __init__(self, config=None, args=(), env=None, wait=True):
        self.dir = tempfile.mkdtemp(prefix="tardytest.")
        self.ready_file = os.path.join(self.dir, "ready.json")
        self.stderr_path = os.path.join(self.dir, "stderr")
        self.config_path = None
        argv = [TARDYD, "--ready-file", self.ready_file]
        if not any(a in ("-a", "--api") or a.startswith("--api=")
                   for a in args):
            argv += ["-a", "127.0.0.1:0"]
        if config is not None:
            self.config_path = os.path.join(self.dir, "tardy.conf")
            self.write_config(config)
            argv += ["-c", self.config_path]
        argv += list(args)
        # The API may put and reach unix sockets in the test's directory
        # (api_auth.c); a test that wants otherwise sets it itself.
        env = dict(os.environ if env is None else env)
        env.setdefault("TARDY_UNIX_DIRS", self.dir)
        self.stderr = open(self.stderr_path, "wb")
        self.stopped = False
        self.died = None    # its exit status, if it ended before stop()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=self.stderr, env=env)
        self.ready = None
        if wait:
            self.wait_ready()

    def write_config(self, text):
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.config_path)

    def read_ready(self):
        try:
            with open(self.ready_file) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def wait_ready(self, generation=0, timeout=5.0):
        deadline = now() + timeout * SLOW
        while now() < deadline:
            r = self.read_ready()
            if r is not None and r["generation"] >= generation:
                self.ready = r
                return r
            if self.proc.poll() is not None:
                raise AssertionError("tardyd exited with %d: %s" %
                                     (self.proc.returncode, self.log()))
            time.sleep(0.002)
        raise AssertionError("tardyd not ready after %.1f s: %s" %
                             (timeout, self.log()))

    def reload(self):
        gen = self.ready["generation"] + 1
        self.proc.send_signal(signal.SIGHUP)
        return self.wait_ready(generation=gen)

    def log(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    @property
    def api_url(self):
        a = self.ready["api"]
        return "http://" + a

    def proxy_addr(self, name):
        return parse_addr(self.ready["proxies"][name])

    def api(self, method, path, body=None, headers=None, raw=None):
        """Returns (status, parsed JSON or text or None)."""
        return http(method, self.api_url + path, body, headers, raw)

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        if not self.stopped:
            self.stopped = True
            self.died = self.proc.poll()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
        return self.proc.returncode

    def close(self):
        self.stop()
        if sys.exc_info()[0] is not None:
            self.report()
        shutil.rmtree(self.dir, ignore_errors=True)

    def report(self, lines=40):
        """For a failing test: whether this tardyd was still running when
        the test stopped it, and the end of its log, as TAP comments. A
        crash or a sanitizer report behind a client's "connection closed"
        shows here, not in the client's traceback."""
        try:
            tail = self.log().splitlines()[-lines:]
        except OSError:
            tail = []
        print("# tardyd pid %d %s; the last %d lines of its log:" % (
            self.proc.pid, "was running" if self.died is None else
            "had exited with %d" % self.died, len(tail)))
        for line in tail:
            print("#   " + line)
        sys.stdout.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class CheckedTardyd(Tardyd):
    """A Tardyd that fails the test if tardyd did not exit cleanly (a
    sanitizer report, a leak, a crash) when it is stopped."""

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:
            self.close()
            return
        code = self.stop()
        log = self.log()
        self.close()
        expect(code == 0 and "Sanitizer" not in log and
               "runtime error" not in log,
               "tardyd exited with %s:\n%s" % (code, log[-3000:]))


def parse_addr(s):
    """'127.0.0.1:80' | '[::1]:80' | 'unix:/p' -> (family, sockaddr)."""
    if s.startswith("unix:"):
        return socket.AF_UNIX, s[5:]
    if s.startswith("["):
        host, port = s[1:].split("]:")
        return socket.AF_INET6, (host, int(port))
    host, port = s.rsplit(":", 1)
    return socket.AF_INET, (host, int(port))


def connect(addr, timeout=2.0):
    fam, sa = addr
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sa)
    return s


def http(method, url, body=None, headers=None, raw=None):
    data = raw
    hdrs = {"User-Agent": "tardytest"}
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    if headers:
        hdrs.update(headers)
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=5 * SLOW) as r:
            status, payload = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, payload = e.code, e.read()
    if not payload:
        return status, None
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, payload.decode(errors="replace")


class Server:
    """A threaded TCP (or unix) server on an ephemeral port.

    handler(conn) runs in its own thread for each connection. Stopped and
    its threads joined on close().
    """

    def __init__(self, handler, family=socket.AF_INET, host="127.0.0.1",
                 path=None, backlog=128):
        self.handler = handler
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_UNIX:
            self.sock.bind(path)
            self.addr = (family, path)
        else:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host, 0))
            self.addr = (family, self.sock.getsockname()[:2])
        self.sock.listen(backlog)
        self.sock.settimeout(0.1)
        self.stopping = False
        self.conns = []
        self.threads = []
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    @property
    def spec(self):
        fam, sa = self.addr
        if fam == socket.AF_UNIX:
            return "unix:" + sa
        if fam == socket.AF_INET6:
            return "[%s]:%d" % sa
        return "%s:%d" % sa

    def _loop(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c.settimeout(10 * SLOW)
            self.conns.append(c)
            t = threading.Thread(target=self._run, args=(c,), daemon=True)
            self.threads.append(t)
            t.start()

    def _run(self, c):
        try:
            self.handler(c)
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        for t in self.threads:
            t.join(1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class UdpEcho:
    """A UDP echo server on loopback, in a thread."""

    def __init__(self, family=socket.AF_INET, host="127.0.0.1"):
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.05)
        self.received = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    @property
    def spec(self):
        host, port = self.sock.getsockname()[:2]
        return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)

    def _loop(self):
        while not self.stopping:
            try:
                data, peer = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.received += 1
            try:
                self.sock.sendto(data, peer)
            except OSError:
                pass

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def echo_handler(c):
    while True:
        d = c.recv(65536)
        if not d:
            return
        c.sendall(d)


def echo_server(**kw):
    return Server(echo_handler, **kw)


def http_handler(body, keepalive=False):
    """A request handler class answering every GET with 200 and body;
    with keepalive, in HTTP/1.1, so the connection stays for the next
    request."""
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keepalive else "HTTP/1.0"

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    return Handler


class HttpServer:
    """An HTTP server on 127.0.0.1:0, one thread a request, answering
    with handler (a BaseHTTPRequestHandler class). Errors of requests
    a test breaks on purpose (a reset) are not printed."""

    def __init__(self, handler):
        import http.server

        class Quiet(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass

        self.httpd = Quiet(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        self.spec = "127.0.0.1:%d" % self.httpd.server_address[1]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(2)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def tagged_server(tag):
    """A server that answers every chunk with tag + chunk."""
    def handler(c):
        while True:
            d = c.recv(65536)
            if not d:
                return
            c.sendall(tag + d)
    return Server(handler)


def expect_closed(s, timeout=2.0):
    """The proxy closed (or reset) the connection."""
    s.settimeout(timeout)
    try:
        d = s.recv(100)
    except ConnectionResetError:
        return
    except socket.timeout:
        raise AssertionError("connection still open")
    expect(d == b"", "connection still open, got %r" % d)


def roundtrip_tag(s, tag):
    """One byte through a tagged_server: tag and the byte come back."""
    s.sendall(b"q")
    got = recv_exactly(s, len(tag) + 1)
    expect(got == tag + b"q", "got %r" % got)


def recv_exactly(s, n, timeout=5.0):
    deadline = now() + timeout
    out = b""
    while len(out) < n:
        s.settimeout(max(0.001, deadline - now()))
        d = s.recv(n - len(out))
        if not d:
            break
        out += d
    return out


def expect(cond, msg="expectation failed"):
    if not cond:
        raise AssertionError(msg)


def expect_between(value, lo, hi, what="value"):
    if not (lo <= value < hi):
        raise AssertionError("%s = %.4f, expected in [%.4f, %.4f)" %
                             (what, value, lo, hi))


def skip(reason):
    raise SkipTest(reason)


class SkipTest(Exception):
    pass


class Lab:
    """tardyd with one proxy, "p", listening on listen in front of
    upstream; toxics through the API. Extra config lines for the proxy
    (e.g. "rcvbuf = 4096") go in proxy_conf, daemon arguments in args."""

    def __init__(self, upstream, listen="127.0.0.1:0", proxy_conf="",
                 args=()):
        self.d = Tardyd("[proxy p]\nlisten = %s\nupstream = %s\n%s" %
                        (listen, upstream, proxy_conf), args=args)
        st, body = self.d.api("GET", "/proxies")
        expect(st == 200, "GET /proxies: %s %r" % (st, body))
        self.addr = self.d.proxy_addr("p")

    def add(self, type_, stream="downstream", name=None, toxicity=None,
            **attrs):
        body = {"type": type_, "stream": stream, "attributes": attrs}
        if name is not None:
            body["name"] = name
        if toxicity is not None:
            body["toxicity"] = toxicity
        st, t = self.d.api("POST", "/proxies/p/toxics", body)
        expect(st == 200, "add %s: %s %r" % (type_, st, t))
        return t["name"]

    def update(self, name, **attrs):
        st, t = self.d.api("POST", "/proxies/p/toxics/" + name,
                           {"attributes": attrs})
        expect(st == 200, "update %s: %s %r" % (name, st, t))
        return t

    def remove(self, name):
        st, t = self.d.api("DELETE", "/proxies/p/toxics/" + name)
        expect(st == 204, "remove %s: %s %r" % (name, st, t))

    def connect(self, timeout=2.0):
        return connect(self.addr, timeout)

    def events(self):
        """Every event so far, oldest first."""
        out, since = [], 0
        for _ in range(100):
            st, body = self.d.api("GET", "/events?since=%d" % since)
            expect(st == 200, "GET /events: %s %r" % (st, body))
            evs = body["events"] if isinstance(body, dict) else body
            if not evs:
                break
            out += evs
            since = evs[-1]["id"]
        return out

    def wait_event(self, kind, conn, timeout=3.0):
        """Until connection conn has an event of type kind."""
        deadline = now() + timeout * SLOW
        while now() < deadline:
            if any(e["type"] == kind and e["connection"] == conn
                   for e in self.events()):
                return
            time.sleep(0.001)
        raise AssertionError("no %s event for connection %d" % (kind, conn))

    def decisions(self):
        """{(connection, toxic): (acted?, roll)} from the event log."""
        out = {}
        for e in self.events():
            if e["type"] in ("toxic_acted", "toxic_skipped"):
                out[(e["connection"], e["toxic"])] = (
                    e["type"] == "toxic_acted", e["roll"])
        return out

    def close(self, check=False):
        """Stop tardyd; with check, it must have exited cleanly (status 0,
        no sanitizer report)."""
        rc = self.d.stop()
        log = self.d.log()
        self.d.close()
        if check:
            expect(rc == 0 and "Sanitizer" not in log and
                   "runtime error" not in log,
                   "tardyd exited with %s: %s" % (rc, log[-3000:]))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        self.close(check=exc_type is None)


def free_port(kinds=(socket.SOCK_STREAM,)):
    """A loopback port free for each socket type in kinds, for a server
    that must be given a fixed port (dnsmasq binds UDP and TCP; a restart
    test reuses one). After tests with thousands of connections many ports
    are still held by TCP TIME_WAITs that a UDP probe alone would not
    see, so every kind is tried."""
    for _ in range(100):
        socks = []
        try:
            first = socket.socket(socket.AF_INET, kinds[0])
            socks.append(first)
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            for k in kinds[1:]:
                s = socket.socket(socket.AF_INET, k)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free loopback port for %r" % (kinds,))


class Dnsmasq:
    """dnsmasq on a loopback port, answering from a hosts file only and
    forwarding nothing. hosts maps names to addresses; set_hosts()
    changes them (dnsmasq rereads the file on SIGHUP)."""

    def __init__(self, hosts, port=None):
        if shutil.which("dnsmasq") is None or shutil.which("dig") is None:
            raise AssertionError("dnsmasq or dig missing: apt-get install "
                                 "dnsmasq-base dnsutils (bootstrap.sh does)")
        self.dir = tempfile.mkdtemp(prefix="tardydns.")
        os.chmod(self.dir, 0o755)
        self.hosts = os.path.join(self.dir, "hosts")
        self.write_hosts(hosts)
        # A port picked by binding 0 and released for dnsmasq: if
        # something else takes it meanwhile, dnsmasq exits; try another.
        err = ""
        for attempt in range(3):
            self.port = port or free_port((socket.SOCK_DGRAM,
                                           socket.SOCK_STREAM))
            errpath = os.path.join(self.dir, "stderr")
            with open(errpath, "wb") as errf:
                self.proc = subprocess.Popen(
                    ["dnsmasq", "--keep-in-foreground",
                     "--port=%d" % self.port,
                     "--listen-address=127.0.0.1", "--bind-interfaces",
                     "--no-resolv", "--no-hosts", "--no-poll",
                     "--addn-hosts=" + self.hosts, "--conf-file=/dev/null",
                     "--pid-file=" + os.path.join(self.dir, "pid"),
                     "--log-facility=-"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=errf)
            deadline = now() + 5
            while now() < deadline and self.proc.poll() is None:
                if self.answers():
                    return
                time.sleep(0.05)
            with open(errpath, "rb") as f:
                err = f.read().decode(errors="replace")
            if self.proc.poll() is None or port is not None:
                break           # running but not answering: give up
        self.close()
        raise AssertionError("dnsmasq did not answer: %s" % err[-500:])

    def write_hosts(self, hosts):
        with open(self.hosts + ".tmp", "w") as f:
            for name, a in hosts.items():
                f.write("%s %s\n" % (a, name))
        os.chmod(self.hosts + ".tmp", 0o644)
        os.rename(self.hosts + ".tmp", self.hosts)

    def answers(self):
        """Whether dnsmasq answers at all (NXDOMAIN counts)."""
        r = subprocess.run(["dig", "+time=1", "+tries=1", "@127.0.0.1",
                            "-p", str(self.port), "tardy-probe.invalid"],
                           capture_output=True, text=True, timeout=5)
        return "status:" in r.stdout

    def set_hosts(self, hosts):
        self.write_hosts(hosts)
        self.proc.send_signal(signal.SIGHUP)

    @property
    def spec(self):
        return "127.0.0.1:%d" % self.port

    def resolv_conf(self, path):
        """Write a resolv.conf naming this server (evdns takes a port)."""
        with open(path, "w") as f:
            f.write("nameserver 127.0.0.1:%d\n" % self.port)
        return path

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def rtt(s, payload=b"x", timeout=3.0):
    """Seconds for payload to come back through an echo server."""
    t0 = now()
    s.sendall(payload)
    got = recv_exactly(s, len(payload), timeout)
    elapsed = now() - t0
    expect(got == payload, "echo returned %r" % got[:40])
    return elapsed


def run_connections(connect, n, parallel=0):
    """n echo connections (connect() makes each), each one round trip:
    one after another, or spread over parallel threads at once."""
    def one():
        s = connect()
        try:
            rtt(s)
        finally:
            s.close()

    if not parallel:
        for _ in range(n):
            one()
        return
    errors = []

    def worker(count):
        try:
            for _ in range(count):
                one()
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n // parallel,))
               for _ in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60 * SLOW)
    expect(not errors, "connections failed: %r" % errors[:3])


def have_ipv6():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def main(namespace, timeout=60):
    tests = [(n, f) for n, f in namespace.items()
             if n.startswith("test_") and callable(f)]
    only = os.environ.get("TARDY_TEST_ONLY")
    if only:
        tests = [(n, f) for n, f in tests if only in n]
    print("1..%d" % len(tests))
    sys.stdout.flush()
    failed = 0

    def on_alarm(signum, frame):
        raise AssertionError("test timed out after %d s" % timeout)

    signal.signal(signal.SIGALRM, on_alarm)
    for i, (name, fn) in enumerate(tests, 1):
        t0 = now()
        signal.alarm(int(timeout * SLOW))
        try:
            fn()
            print("ok %d - %s (%.0f ms)" % (i, name, (now() - t0) * 1000))
        except SkipTest as e:
            print("ok %d - %s # SKIP %s" % (i, name, e))
        except Exception:
            failed += 1
            print("not ok %d - %s" % (i, name))
            for line in traceback.format_exc().splitlines():
                print("# " + line)
        finally:
            signal.alarm(0)
        sys.stdout.flush()
    return sys.exit(1 if failed else 0)

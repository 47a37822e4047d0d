"""When the upstream cannot be reached, and upstreams named by host names.

A client of a proxy whose upstream refuses must see what it sees through
Toxiproxy: its connect() succeeds, then it reads EOF. "Is the proxy up"
probes in client suites rely on that; a reset racing the client's
connect() made them fail. The reset stays available per proxy
(upstream_failure = reset).

Upstream host names are accepted before they resolve (a compose or
Kubernetes service starts after the proxy is made) and looked up, on the
event loop, when a connection needs them: here from a dnsmasq the test
starts on loopback after the proxy was created.
"""

import errno
import os
import shutil
import socket
import tempfile
import time

import tardytest
from tardytest import (Dnsmasq, Tardyd, echo_server, expect, main, now,
                       recv_exactly)

# Every daemon these tests stop must exit cleanly (no sanitizer report).
Tardyd = tardytest.CheckedTardyd


def refusing_port():
    """A loopback port bound but not listening: connects are refused."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s, "127.0.0.1:%d" % s.getsockname()[1]


def probe(addr, payload=None):
    """connect(), maybe send, then read to the end, as a client's "is it
    up" probe does: returns ("connect", errno), ("recv", errno) or
    ("eof", bytes)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        try:
            s.connect(addr)
        except OSError as e:
            return "connect", e.errno
        try:
            if payload is not None:
                s.sendall(payload)
            data = s.recv(100)
            return "eof", data
        except OSError as e:
            return "recv", e.errno
    finally:
        s.close()


def test_refused_upstream_gives_eof_1000_times():
    hold, spec = refusing_port()
    with hold, Tardyd(args=["-p", "p=127.0.0.1:0=" + spec]) as d:
        addr = d.proxy_addr("p")[1]
        results = {}
        t0 = now()
        for _ in range(1000):
            r = probe(addr)
            results[r] = results.get(r, 0) + 1
        expect(results == {("eof", b""): 1000},
               "1000 probes of a proxy whose upstream refuses: %r "
               "(want every connect() to succeed, then EOF)" % results)
        expect(now() - t0 < 30 * tardytest.SLOW, "1000 probes took %.1f s" %
               (now() - t0))
        st, m = d.api("GET", "/metrics")
        expect('tardy_connections_failed_total{proxy="p"} 1000' in m,
               "failures counted: %s" %
               [l for l in m.splitlines() if "failed" in l])
        expect("upstream connect failed: Connection refused" in d.log(),
               "the reason is logged: %s" % d.log()[-500:])


def test_refused_upstream_with_request_sent_gives_eof():
    # A client that speaks first (HTTP) has its bytes discarded, so the
    # kernel does not answer the close with a reset.
    hold, spec = refusing_port()
    with hold, Tardyd(args=["-p", "p=127.0.0.1:0=" + spec]) as d:
        addr = d.proxy_addr("p")[1]
        got = {}
        for _ in range(50):
            s = socket.create_connection(addr, timeout=5)
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            try:
                r = ("eof", s.recv(100))
            except OSError as e:
                r = ("recv", e.errno)
            s.close()
            got[r] = got.get(r, 0) + 1
        # A request that arrives after tardyd closed may still be answered
        # with a reset by the kernel; what arrived first must not be.
        expect(got.get(("eof", b""), 0) >= 45,
               "clients that sent a request at once: %r" % got)


def test_reset_is_a_choice_per_proxy():
    hold, spec = refusing_port()
    conf = ("[proxy r]\nlisten = 127.0.0.1:0\nupstream = %s\n"
            "upstream_failure = reset\n"
            "[proxy c]\nlisten = 127.0.0.1:0\nupstream = %s\n" % (spec, spec))
    with hold, Tardyd(conf) as d:
        st, p = d.api("GET", "/proxies/r")
        expect(p["upstream_failure"] == "reset", "shown: %r" % p)
        st, p = d.api("GET", "/proxies/c")
        expect(p["upstream_failure"] == "close", "default shown: %r" % p)
        for _ in range(50):
            kind, err = probe(d.proxy_addr("r")[1])
            expect(kind in ("connect", "recv") and err == errno.ECONNRESET,
                   "with upstream_failure = reset: %s %r" % (kind, err))
        # The API sets and changes it too.
        st, p = d.api("PATCH", "/proxies/c", {"upstream_failure": "reset"})
        expect(st == 200 and p["upstream_failure"] == "reset",
               "PATCH: %s %r" % (st, p))
        kind, err = probe(d.proxy_addr("c")[1])
        expect(err == errno.ECONNRESET, "after PATCH: %s %r" % (kind, err))
        st, p = d.api("POST", "/proxies", {"name": "n", "upstream": spec,
                                           "upstream_failure": "rst"})
        expect(st == 400 and "upstream_failure" in p["error"],
               "bad value: %s %r" % (st, p))
        st, p = d.api("POST", "/proxies", {"name": "n", "upstream": spec,
                                           "upstream_failure": "reset"})
        expect(st == 201 and p["upstream_failure"] == "reset",
               "create: %s %r" % (st, p))


def test_bad_upstream_failure_in_config_names_the_line():
    d = Tardyd("[proxy p]\nlisten = 127.0.0.1:0\nupstream = 127.0.0.1:1\n"
               "upstream_failure = drop\n", wait=False)
    rc = d.proc.wait(5 * tardytest.SLOW)
    log = d.log()
    d.close()
    expect(rc == 1 and "tardy.conf:4: upstream_failure: invalid value "
           "\"drop\" (close or reset)" in log, "rc %s: %s" % (rc, log))


def test_names_are_accepted_before_they_resolve():
    # API, config file and --proxy: a well-formed name that resolves to
    # nothing is accepted; a malformed one is still an error.
    conf = ("[proxy f]\nlisten = 127.0.0.1:0\nupstream = svc-f.tardy.invalid:80\n")
    with Tardyd(conf, args=["-p", "c=127.0.0.1:0=svc-c.tardy.invalid:80"]) \
            as d:
        for name in ("f", "c"):
            st, p = d.api("GET", "/proxies/" + name)
            expect(st == 200 and p["upstream"].startswith("svc-"),
                   "%s: %s %r" % (name, st, p))
        st, p = d.api("POST", "/proxies",
                      {"name": "redis", "upstream": "redis:6379"})
        expect(st == 201 and p["upstream"] == "redis:6379",
               "redis:6379: %s %r" % (st, p))
        for bad in ("-redis:6379", "red is:6379", "redis:99999", "redis",
                    "a..b:80", "1.2.3.400:80", "[redis]:80"):
            st, p = d.api("POST", "/proxies", {"name": "bad",
                                               "upstream": bad})
            expect(st == 400 and p["error"].startswith(
                "bad request body: upstream:"),
                "%r: %s %r" % (bad, st, p))
        # A name that does not resolve fails the connection, with EOF.
        kind, data = probe(d.proxy_addr("f")[1])
        expect((kind, data) == ("eof", b""), "unresolved: %s %r" %
               (kind, data))
    d = Tardyd(args=["-p", "x=127.0.0.1:0=bad_-:80"], wait=False)
    rc = d.proc.wait(5 * tardytest.SLOW)
    log = d.log()
    d.close()
    expect(rc == 1 and "--proxy x=127.0.0.1:0=bad_-:80" in log,
           "malformed name on the command line: %s %s" % (rc, log))


def test_name_served_after_the_proxy_was_made():
    with echo_server() as up:
        port = up.addr[1][1]
        dns = Dnsmasq({})
        try:
            resolv = dns.resolv_conf(os.path.join(dns.dir, "resolv.conf"))
            env = dict(os.environ, TARDY_RESOLV_CONF=resolv)
            with Tardyd(env=env) as d:
                name = "svc.tardy.test"
                st, p = d.api("POST", "/proxies", {
                    "name": "svc", "upstream": "%s:%d" % (name, port)})
                expect(st == 201, "create: %s %r" % (st, p))
                addr = tardytest.parse_addr(p["listen"])
                # Not served yet: NXDOMAIN, the connection sees EOF at once.
                t0 = now()
                kind, data = probe(addr[1], b"hello")
                expect((kind, data) == ("eof", b""),
                       "before the name exists: %s %r" % (kind, data))
                expect(now() - t0 < 1.0 * tardytest.SLOW,
                       "failed lookup took %.3f s" % (now() - t0))
                expect('cannot resolve "svc.tardy.test"' in d.log(),
                       "reason logged: %s" % d.log()[-400:])
                # The service starts: its name resolves, with no change to
                # the proxy, on the next connection (failures not cached).
                dns.set_hosts({name: "127.0.0.1"})
                deadline = now() + 5 * tardytest.SLOW
                while True:
                    s = socket.create_connection(addr[1], timeout=5)
                    s.sendall(b"ping")
                    try:
                        got = recv_exactly(s, 4, 2)
                    except (OSError, AssertionError):
                        got = b""
                    s.close()
                    if got == b"ping" or now() > deadline:
                        break
                expect(got == b"ping", "through the name: %r" % got)
                # A burst of connections shares lookups and all get through.
                socks = [socket.create_connection(addr[1], timeout=5)
                         for _ in range(50)]
                for i, s in enumerate(socks):
                    s.sendall(b"%04d" % i)
                for i, s in enumerate(socks):
                    expect(recv_exactly(s, 4) == b"%04d" % i, "burst %d" % i)
                    s.close()
        finally:
            dns.close()


def test_connections_closed_while_their_name_is_looked_up():
    # A resolver that never answers (nothing listens on its port): each
    # lookup takes evdns's 2 x 2 s. Meanwhile a toxic closes one waiting
    # connection and a client gives up on another; neither may leave
    # anything behind once the answer (a failure) comes.
    port = tardytest.free_port((socket.SOCK_DGRAM,))
    tmp = tempfile.mkdtemp(prefix="tardyresolv.")
    resolv = os.path.join(tmp, "resolv.conf")
    with open(resolv, "w") as f:
        f.write("nameserver 127.0.0.1:%d\n" % port)
    env = dict(os.environ, TARDY_RESOLV_CONF=resolv)
    try:
        with Tardyd(env=env, args=[
                "-p", "slow=127.0.0.1:0=slow.tardy.test:80",
                "--toxic", "slow:timeout:timeout=100"]) as d:
            addr = d.proxy_addr("slow")[1]
            t0 = now()
            kind, data = probe(addr)
            elapsed = now() - t0
            expect((kind, data) == ("eof", b""), "timeout toxic while "
                   "resolving: %s %r" % (kind, data))
            expect(0.1 <= elapsed < 1.0 * tardytest.SLOW,
                   "closed by the toxic after %.3f s" % elapsed)
            st, _ = d.api("DELETE", "/proxies/slow/toxics/timeout_downstream")
            expect(st == 204, "remove the toxic: %s" % st)
            gone = socket.create_connection(addr, timeout=5)
            gone.close()
            time.sleep(0.05)
            st, conns = d.api("GET", "/proxies/slow/connections")
            expect([c["state"] for c in conns] == ["resolving"],
                   "waiting for its name: %r" % conns)
            # Both lookups fail (evdns gives up after its attempts); then
            # nothing is left open.
            deadline = now() + 10 * tardytest.SLOW
            while now() < deadline:
                st, conns = d.api("GET", "/proxies/slow/connections")
                if conns == []:
                    break
                time.sleep(0.1)
            expect(conns == [], "left open: %r" % conns)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


main(globals())

"""The HTTP control API: every endpoint, status code and message of
Toxiproxy's v2 API that clients rely on, and tardy's extensions, checked
against a real tardyd with real connections on loopback."""

import errno
import json
import os
import re
import socket
import stat
import subprocess
import time

import tardytest as T


Tardyd = T.CheckedTardyd


# --- helpers --------------------------------------------------------------

def create(d, name, upstream, **kw):
    body = dict(name=name, upstream=upstream, **kw)
    st, p = d.api("POST", "/proxies", body)
    T.expect(st == 201, "create %s: %d %r" % (name, st, p))
    return p


def expect_error(reply, status, substring):
    st, body = reply
    T.expect(st == status, "status %d, expected %d: %r" % (st, status, body))
    T.expect(isinstance(body, dict) and body.get("status") == status and
             substring in body.get("error", ""),
             "error %r does not say %r" % (body, substring))


def roundtrip(s, data=b"ping"):
    t0 = T.now()
    s.sendall(data)
    got = T.recv_exactly(s, len(data), timeout=5)
    T.expect(got == data, "echo returned %r" % got)
    return T.now() - t0


def expect_refused(addr):
    try:
        s = T.connect(addr, timeout=2)
    except ConnectionRefusedError:
        return
    s.close()
    raise AssertionError("connect to %r succeeded" % (addr,))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def send_read_all(addr, data, timeout=5):
    """Send raw bytes on a new connection and read to EOF (bounded)."""
    s = T.connect(addr, timeout)
    s.sendall(data)
    buf = b""
    deadline = T.now() + timeout
    while T.now() < deadline:
        d = s.recv(65536)
        if not d:
            break
        buf += d
    s.close()
    return buf


def raw_request(addr, data, timeout=5):
    """Send raw bytes, read to EOF; returns (status, headers, body)."""
    buf = send_read_all(addr, data, timeout)
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def metrics(d):
    st, text = d.api("GET", "/metrics")
    T.expect(st == 200, "metrics: %d" % st)
    values = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, value = line.rsplit(" ", 1)
        values[key] = float(value)
    return text, values


def tardyd_version():
    out = subprocess.run([T.TARDYD, "-V"], capture_output=True, text=True)
    return out.stdout.split()[-1]


# --- /version, /proxies ---------------------------------------------------

def test_numbers_read_as_toxiproxys():
    # Go writes a float 1 as 1: so do we, for toxicity and probabilities.
    with Tardyd() as d, T.echo_server() as echo:
        create(d, "p", echo.spec)
        for tox, want in ((1, b'"toxicity":1,'), (0.5, b'"toxicity":0.5,')):
            st, t = d.api("POST", "/proxies/p/toxics", {
                "type": "latency", "name": "l%s" % tox, "toxicity": tox})
            T.expect(st == 200, "create: %s %r" % (st, t))
            st, headers, body = raw_request(
                T.parse_addr(d.ready["api"]),
                b"GET /proxies/p/toxics/l%s HTTP/1.1\r\nHost: localhost\r\n"
                b"Connection: close\r\n\r\n" % str(tox).encode())
            T.expect(want in body, "toxicity %s printed as %r" % (tox, body))


def test_every_reply_has_a_request_id():
    # As Toxiproxy's: X-Toxiproxy-Request-Id, on successes and errors.
    with Tardyd() as d:
        addr = T.parse_addr(d.ready["api"])
        ids = set()
        for req in (b"GET /version", b"GET /proxies", b"GET /nope",
                    b"DELETE /proxies/none", b"POST /reset",
                    b"PUT /version"):
            st, headers, body = raw_request(
                addr, req + b" HTTP/1.1\r\nHost: localhost\r\n"
                b"Connection: close\r\n\r\n")
            rid = headers.get("x-toxiproxy-request-id", "")
            T.expect(len(rid) == 20 and rid.isalnum(),
                     "%s: %d, request id %r" % (req, st, rid))
            ids.add(rid)
        T.expect(len(ids) == 6, "request ids repeat: %r" % ids)


def test_version():
    with Tardyd() as d:
        st, headers, body = raw_request(
            T.parse_addr(d.ready["api"]),
            b"GET /version HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        T.expect(st == 200, "status %d" % st)
        # Byte for byte Toxiproxy's form, with tardy's version.
        T.expect(headers.get("content-type") ==
                 "application/json;charset=utf-8",
                 "content type %r" % headers.get("content-type"))
        T.expect(body == b'{"version": "%s"}\n' % tardyd_version().encode(),
                 "body %r" % body)


def test_create_proxy_carries_data_and_reports_resolved_port():
    with Tardyd() as d, T.echo_server() as echo:
        p = create(d, "web", echo.spec)
        T.expect(p["name"] == "web" and p["upstream"] == echo.spec and
                 p["enabled"] is True and p["toxics"] == [], "proxy %r" % p)
        host, port = T.parse_addr(p["listen"])[1]
        T.expect(host == "127.0.0.1" and port != 0,
                 "listen not resolved: %s" % p["listen"])
        with T.connect(T.parse_addr(p["listen"])) as s:
            T.expect(roundtrip(s, b"hello through the api") < 1, "slow")
        st, one = d.api("GET", "/proxies/web")
        T.expect(st == 200 and one == p, "GET /proxies/web: %r" % one)
        st, all_ = d.api("GET", "/proxies")
        T.expect(st == 200 and all_ == {"web": p}, "GET /proxies: %r" % all_)
        # The ready file follows proxies made through the API.
        T.expect(d.read_ready()["proxies"].get("web") == p["listen"],
                 "ready file: %r" % d.read_ready())


def test_create_defaults_and_explicit_listen():
    with Tardyd() as d, T.echo_server() as echo:
        port = free_port()
        p = create(d, "fixed", echo.spec, listen="127.0.0.1:%d" % port,
                   enabled=False)
        T.expect(p["listen"] == "127.0.0.1:%d" % port and
                 p["enabled"] is False, "proxy %r" % p)
        expect_refused(T.parse_addr(p["listen"]))
        # A host name is looked up without blocking the daemon.
        p = create(d, "named", "localhost:%d" % echo.addr[1][1],
                   listen="localhost:0")
        T.expect(p["listen"].startswith("127.0.0.1:") and
                 p["upstream"] == "localhost:%d" % echo.addr[1][1],
                 "proxy %r" % p)
        with T.connect(T.parse_addr(p["listen"])) as s:
            roundtrip(s)


def test_create_errors():
    with Tardyd() as d, T.echo_server() as echo:
        p = create(d, "a", echo.spec)
        expect_error(d.api("POST", "/proxies", {"upstream": echo.spec}),
                     400, "missing required field: name")
        expect_error(d.api("POST", "/proxies", {"name": "b"}),
                     400, "missing required field: upstream")
        expect_error(d.api("POST", "/proxies",
                           {"name": "a", "upstream": echo.spec}),
                     409, "proxy already exists")
        expect_error(d.api("POST", "/proxies", {"name": "b",
                           "upstream": echo.spec, "listen": p["listen"]}),
                     500, "in use")
        expect_error(d.api("POST", "/proxies", raw=b"{"),
                     400, "bad request body")
        expect_error(d.api("GET", "/proxies/nope"), 404, "proxy not found")
        # Toxiproxy's bind failure, in its words (Go's net.Listen error).
        st, e = d.api("POST", "/proxies", {"name": "b", "upstream": echo.spec,
                                           "listen": p["listen"]})
        T.expect(e["error"] == "listen tcp %s: bind: address already in use"
                 % p["listen"], "bind failure: %r" % e)
        st, all_ = d.api("GET", "/proxies")
        T.expect(list(all_) == ["a"], "proxies now %r" % all_)
        # As Go's decoder: what follows the JSON value is not read.
        st, c = d.api("POST", "/proxies", raw=json.dumps(
            {"name": "c", "upstream": echo.spec}).encode() + b" trailing")
        T.expect(st == 201 and c["name"] == "c", "trailing data: %s %r" %
                 (st, c))


def test_unix_listen():
    with Tardyd() as d, T.echo_server() as echo:
        path = os.path.join(d.dir, "p.sock")
        p = create(d, "u", echo.spec, listen="unix:" + path)
        T.expect(p["listen"] == "unix:" + path, "listen %r" % p["listen"])
        with T.connect((socket.AF_UNIX, path)) as s:
            roundtrip(s)
        st, _ = d.api("DELETE", "/proxies/u")
        T.expect(st == 204 and not os.path.exists(path),
                 "socket left behind")


def test_delete():
    with Tardyd() as d, T.echo_server() as echo:
        p = create(d, "gone", echo.spec)
        addr = T.parse_addr(p["listen"])
        s = T.connect(addr)
        roundtrip(s)
        st, body = d.api("DELETE", "/proxies/gone")
        T.expect(st == 204 and body is None, "delete: %d %r" % (st, body))
        T.expect_closed(s)
        s.close()
        expect_refused(addr)
        expect_error(d.api("GET", "/proxies/gone"), 404, "proxy not found")
        expect_error(d.api("DELETE", "/proxies/gone"), 404, "proxy not found")
        T.expect("gone" not in d.read_ready()["proxies"], "ready file")


# --- enabled ----------------------------------------------------------------

def bind_fails(host, port, reuse):
    s = socket.socket()
    if reuse:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
    except OSError as e:
        return e.errno == errno.EADDRINUSE
    finally:
        s.close()
    return False


def test_enabled_toggle():
    with Tardyd() as d, T.echo_server() as echo:
        p = create(d, "t", echo.spec)
        addr = T.parse_addr(p["listen"])
        s = T.connect(addr)
        roundtrip(s)
        st, q = d.api("PATCH", "/proxies/t", {"enabled": False})
        T.expect(st == 200 and q["enabled"] is False and
                 q["listen"] == p["listen"], "disable: %d %r" % (st, q))
        T.expect_closed(s)
        s.close()
        expect_refused(addr)
        # The port stays tardyd's while disabled.
        T.expect(bind_fails(*addr[1], reuse=False), "port free (plain)")
        T.expect(bind_fails(*addr[1], reuse=True), "port free (REUSEADDR)")
        st, q = d.api("GET", "/proxies/t")
        T.expect(q["enabled"] is False, "GET says %r" % q)
        # POST is Toxiproxy's older spelling of PATCH.
        st, q = d.api("POST", "/proxies/t", {"enabled": True})
        T.expect(st == 200 and q["enabled"] is True, "enable: %r" % q)
        with T.connect(addr) as s:
            roundtrip(s)
        # Enabling an enabled proxy changes nothing, connections stay.
        s = T.connect(addr)
        roundtrip(s)
        st, q = d.api("PATCH", "/proxies/t", {"enabled": True})
        T.expect(st == 200, "%d" % st)
        roundtrip(s)
        s.close()


# --- changing listen and upstream -----------------------------------------

def test_update_upstream_and_listen():
    with Tardyd() as d, T.tagged_server(b"1:") as one, \
            T.tagged_server(b"2:") as two:
        p = create(d, "m", one.spec)
        st, _ = d.api("POST", "/proxies/m/toxics",
                      {"type": "noop", "name": "kept", "toxicity": 0.5,
                       "attributes": {"every": 2, "after_ms": 7}})
        T.expect(st == 200, "toxic %d" % st)
        p = d.api("GET", "/proxies/m")[1]
        addr = T.parse_addr(p["listen"])
        s = T.connect(addr)
        s.sendall(b"x")
        T.expect(T.recv_exactly(s, 3) == b"1:x", "first upstream")

        # Sending back what GET returned is no change: the connection stays.
        st, q = d.api("PATCH", "/proxies/m", {"listen": p["listen"],
                      "upstream": p["upstream"], "enabled": True})
        T.expect(st == 200 and q == p, "no-op update: %r" % q)
        s.sendall(b"y")
        T.expect(T.recv_exactly(s, 3) == b"1:y", "connection kept")

        # A new upstream restarts the proxy on the same port.
        st, q = d.api("PATCH", "/proxies/m", {"upstream": two.spec})
        T.expect(st == 200 and q["upstream"] == two.spec and
                 q["listen"] == p["listen"] and q["toxics"] == p["toxics"],
                 "upstream change, toxics kept as they were: %r" % q)
        T.expect_closed(s)
        s.close()
        with T.connect(addr) as s:
            s.sendall(b"z")
            T.expect(T.recv_exactly(s, 3) == b"2:z", "second upstream")

        # A listen address in use: 500, and nothing changes.
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            expect_error(d.api("PATCH", "/proxies/m", {
                "listen": "127.0.0.1:%d" % busy.getsockname()[1]}),
                500, "in use")
        st, q2 = d.api("GET", "/proxies/m")
        T.expect(q2 == q, "changed after a failed update: %r" % q2)
        with T.connect(addr) as s:
            s.sendall(b"w")
            T.expect(T.recv_exactly(s, 3) == b"2:w", "still serving")

        # A new listen address: the old port is released.
        port = free_port()
        st, q = d.api("PATCH", "/proxies/m",
                      {"listen": "127.0.0.1:%d" % port})
        T.expect(st == 200 and q["listen"] == "127.0.0.1:%d" % port and
                 [t["name"] for t in q["toxics"]] == ["kept"],
                 "listen change: %r" % q)
        expect_refused(addr)
        with T.connect(T.parse_addr(q["listen"])) as s:
            s.sendall(b"v")
            T.expect(T.recv_exactly(s, 3) == b"2:v", "new port")
        T.expect(d.read_ready()["proxies"]["m"] == q["listen"],
                 "ready file not updated")


# --- /populate --------------------------------------------------------------

def test_populate_keep_and_replace():
    with Tardyd() as d, T.tagged_server(b"1:") as one, \
            T.tagged_server(b"2:") as two:
        kept = create(d, "kept", one.spec)
        repl = create(d, "repl", one.spec)
        for name in ("kept", "repl"):
            st, _ = d.api("POST", "/proxies/%s/toxics" % name,
                          {"type": "noop"})
            T.expect(st == 200, "toxic on %s" % name)
        ks = T.connect(T.parse_addr(kept["listen"]))
        T.roundtrip_tag(ks, b"1:")
        rs = T.connect(T.parse_addr(repl["listen"]))
        T.roundtrip_tag(rs, b"1:")

        st, body = d.api("POST", "/populate", [
            {"name": "kept", "listen": kept["listen"], "upstream": one.spec},
            {"name": "repl", "listen": repl["listen"], "upstream": two.spec},
            {"name": "new", "upstream": two.spec},
        ])
        T.expect(st == 201, "populate: %d %r" % (st, body))
        got = {p["name"]: p for p in body["proxies"]}
        T.expect([p["name"] for p in body["proxies"]] ==
                 ["kept", "repl", "new"], "order %r" % body)
        T.expect(got["kept"] == d.api("GET", "/proxies/kept")[1] and
                 len(got["kept"]["toxics"]) == 1, "kept: %r" % got["kept"])
        # Replaced by the one rule (control.c): its toxics stay.
        T.expect(len(got["repl"]["toxics"]) == 1 and
                 got["repl"]["upstream"] == two.spec and
                 got["repl"]["listen"] == repl["listen"],
                 "replaced: %r" % got["repl"])
        # The kept proxy's connection is untouched; the replaced one's ends.
        T.roundtrip_tag(ks, b"1:")
        ks.close()
        T.expect_closed(rs)
        rs.close()
        with T.connect(T.parse_addr(got["repl"]["listen"])) as s:
            T.roundtrip_tag(s, b"2:")
        with T.connect(T.parse_addr(got["new"]["listen"])) as s:
            T.roundtrip_tag(s, b"2:")

        # tardy also takes {"proxies": [...]}, the shape of the reply.
        st, body = d.api("POST", "/populate", {"proxies": [
            {"name": "other", "upstream": one.spec, "enabled": False}]})
        T.expect(st == 201 and body["proxies"][0]["enabled"] is False,
                 "object form: %r" % body)
        st, all_ = d.api("GET", "/proxies")
        T.expect(sorted(all_) == ["kept", "new", "other", "repl"],
                 "proxies not in the list stay: %r" % sorted(all_))


def test_populate_all_or_nothing():
    with Tardyd() as d, T.echo_server() as echo:
        a = create(d, "a", echo.spec)
        before = d.api("GET", "/proxies")[1]
        # An invalid entry after a valid one: nothing is created.
        expect_error(d.api("POST", "/populate", [
            {"name": "x", "upstream": echo.spec},
            {"name": "y"}]), 400, "missing required field: upstream at "
                                  "proxy 2")
        # A listener that cannot be bound, after entries that could.
        expect_error(d.api("POST", "/populate", [
            {"name": "x", "upstream": echo.spec},
            {"name": "a", "upstream": "127.0.0.1:1"},
            {"name": "z", "upstream": echo.spec, "listen": a["listen"]}]),
            500, "in use")
        T.expect(d.api("GET", "/proxies")[1] == before, "half applied")
        with T.connect(T.parse_addr(a["listen"])) as s:
            roundtrip(s)


# --- toxics -----------------------------------------------------------------

def test_toxics_act_on_open_connections():
    with Tardyd() as d, T.echo_server() as echo:
        p = create(d, "slow", echo.spec)
        s = T.connect(T.parse_addr(p["listen"]))
        T.expect(roundtrip(s) < 0.1, "slow without a toxic")

        st, t = d.api("POST", "/proxies/slow/toxics", {
            "type": "latency", "attributes": {"latency": 300}})
        T.expect(st == 200 and t == {
            "name": "latency_downstream", "type": "latency",
            "stream": "downstream", "toxicity": 1.0,
            "attributes": {"latency": 300, "jitter": 0}},
            "create toxic: %d %r" % (st, t))
        T.expect_between(roundtrip(s), 0.3, 0.3 + 0.25, "with 300 ms")

        st, t2 = d.api("GET", "/proxies/slow/toxics/latency_downstream")
        T.expect(st == 200 and t2 == t, "GET toxic %r" % t2)
        st, lst = d.api("GET", "/proxies/slow/toxics")
        T.expect(st == 200 and lst == [t], "GET toxics %r" % lst)

        # Attributes merge: jitter changes, latency stays unless sent.
        st, t3 = d.api("PATCH", "/proxies/slow/toxics/latency_downstream",
                       {"attributes": {"latency": 100}, "toxicity": 1})
        T.expect(st == 200 and t3["attributes"] == {
            "latency": 100, "jitter": 0}, "update %r" % t3)
        T.expect_between(roundtrip(s), 0.1, 0.3, "with 100 ms")
        st, t4 = d.api("POST", "/proxies/slow/toxics/latency_downstream",
                       {"attributes": {"jitter": 5}})
        T.expect(st == 200 and t4["attributes"] == {
            "latency": 100, "jitter": 5}, "merge %r" % t4)

        st, body = d.api("DELETE", "/proxies/slow/toxics/latency_downstream")
        T.expect(st == 204 and body is None, "delete %d" % st)
        T.expect(roundtrip(s) < 0.1, "still slow after removing the toxic")
        expect_error(d.api("GET", "/proxies/slow/toxics/latency_downstream"),
                     404, "toxic not found")
        expect_error(d.api("DELETE",
                           "/proxies/slow/toxics/latency_downstream"),
                     404, "toxic not found")
        s.close()


def test_toxic_defaults_order_and_errors():
    with Tardyd() as d, T.echo_server() as echo:
        create(d, "p", echo.spec)
        st, t = d.api("POST", "/proxies/p/toxics", {
            "type": "latency", "stream": "upstream", "toxicity": 0.5,
            "attributes": {"latency": 10}})
        T.expect(st == 200 and t["name"] == "latency_upstream" and
                 t["stream"] == "upstream" and t["toxicity"] == 0.5,
                 "upstream toxic %r" % t)
        st, t = d.api("POST", "/proxies/p/toxics",
                      {"type": "noop", "name": "first"})
        T.expect(st == 200 and t["stream"] == "downstream", "%r" % t)
        # Upstream toxics are listed first, as Toxiproxy does.
        st, lst = d.api("GET", "/proxies/p/toxics")
        T.expect([x["name"] for x in lst] == ["latency_upstream", "first"],
                 "order %r" % lst)
        expect_error(d.api("POST", "/proxies/p/toxics", {"type": "noop",
                     "name": "first"}), 409, "toxic already exists")
        expect_error(d.api("POST", "/proxies/p/toxics", {"type": "nope"}),
                     400, "invalid toxic type")
        expect_error(d.api("POST", "/proxies/p/toxics", {}),
                     400, "invalid toxic type")
        # Stream is checked before type, as in Toxiproxy.
        expect_error(d.api("POST", "/proxies/p/toxics",
                           {"type": "nope", "stream": "sideways"}),
                     400, "stream was invalid, can be either upstream or "
                          "downstream")
        expect_error(d.api("POST", "/proxies/q/toxics", {"type": "noop"}),
                     404, "proxy not found")
        expect_error(d.api("GET", "/proxies/q/toxics"), 404,
                     "proxy not found")
        expect_error(d.api("PATCH", "/proxies/p/toxics/nope",
                           {"toxicity": 1}), 404, "toxic not found")
        # The toxic is looked up before the body is read.
        expect_error(d.api("PATCH", "/proxies/p/toxics/nope", raw=b"{"),
                     404, "toxic not found")
        expect_error(d.api("PATCH", "/proxies/p/toxics/first", raw=b"{"),
                     400, "bad request body")
        # A failed update leaves the toxic as it was.
        expect_error(d.api("PATCH", "/proxies/p/toxics/latency_upstream",
                           {"toxicity": 0.1,
                            "attributes": {"latency": -5}}),
                     400, "latency")
        st, t = d.api("GET", "/proxies/p/toxics/latency_upstream")
        T.expect(t["toxicity"] == 0.5 and t["attributes"]["latency"] == 10,
                 "changed by a failed update: %r" % t)


def test_reset():
    with Tardyd() as d, T.echo_server() as echo:
        a = create(d, "a", echo.spec, enabled=False)
        b = create(d, "b", echo.spec)
        for name in ("a", "b"):
            st, _ = d.api("POST", "/proxies/%s/toxics" % name,
                          {"type": "latency", "attributes": {"latency": 500}})
            T.expect(st == 200, "toxic")
        s = T.connect(T.parse_addr(b["listen"]))
        T.expect(roundtrip(s) >= 0.5, "latency not acting")
        st, body = d.api("POST", "/reset")
        T.expect(st == 204 and body is None, "reset: %d %r" % (st, body))
        for name in ("a", "b"):
            st, p = d.api("GET", "/proxies/" + name)
            T.expect(p["enabled"] is True and p["toxics"] == [],
                     "after reset: %r" % p)
        T.expect(roundtrip(s) < 0.1, "toxic still acting after reset")
        s.close()
        # Created disabled, "a" showed the address it was given (as
        # Toxiproxy); enabled, the one it listens on.
        T.expect(a["listen"] == "127.0.0.1:0", "created disabled: %r" % a)
        st, a = d.api("GET", "/proxies/a")
        with T.connect(T.parse_addr(a["listen"])) as s:
            roundtrip(s)


# --- extensions -------------------------------------------------------------

def test_metrics_live():
    with Tardyd() as d, T.echo_server() as echo:
        create(d, "m", echo.spec)
        text, v = metrics(d)
        for fam, typ in (("tardy_connections_accepted_total", "counter"),
                         ("tardy_connections_active", "gauge"),
                         ("tardy_connections_failed_total", "counter"),
                         ("tardy_bytes_total", "counter"),
                         ("tardy_toxics_applied_total", "counter"),
                         ("tardy_proxies", "gauge"),
                         ("tardy_build_info", "gauge")):
            T.expect("# TYPE %s %s\n" % (fam, typ) in text and
                     "# HELP %s " % fam in text, "no TYPE/HELP for " + fam)
        T.expect(v['tardy_connections_accepted_total{proxy="m"}'] == 0 and
                 v["tardy_proxies"] == 1 and
                 v['tardy_build_info{version="%s"}' % tardyd_version()] == 1,
                 "initial %r" % v)
        st, headers, _ = raw_request(
            T.parse_addr(d.ready["api"]),
            b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        T.expect(headers["content-type"].startswith(
            "text/plain; version=0.0.4"), "type %r" % headers)

        p = d.api("GET", "/proxies/m")[1]
        s = T.connect(T.parse_addr(p["listen"]))
        roundtrip(s, b"x" * 1000)
        d.api("POST", "/proxies/m/toxics", {"type": "noop"})
        _, v = metrics(d)
        # Counted while the connection is still open.
        T.expect(v['tardy_connections_accepted_total{proxy="m"}'] == 1 and
                 v['tardy_connections_active{proxy="m"}'] == 1 and
                 v['tardy_bytes_total{proxy="m",direction="upstream"}'] ==
                 1000 and
                 v['tardy_bytes_total{proxy="m",direction="downstream"}'] ==
                 1000 and
                 v['tardy_toxics_applied_total{proxy="m"}'] == 1,
                 "live %r" % v)
        s.close()
        deadline = T.now() + 2
        while T.now() < deadline:
            _, v = metrics(d)
            if v['tardy_connections_active{proxy="m"}'] == 0:
                break
            time.sleep(0.01)
        T.expect(v['tardy_connections_active{proxy="m"}'] == 0,
                 "still active")


def test_metrics_timer_lateness():
    """The histogram of how late toxic timers fired counts each latency
    release; the client never sees one early."""
    name = "tardy_timer_late_seconds"
    with Tardyd() as d, T.echo_server() as echo:
        p = create(d, "m", echo.spec)
        text, v = metrics(d)
        T.expect("# TYPE %s histogram\n" % name in text, "no histogram")
        before = v[name + "_count"]
        d.api("POST", "/proxies/m/toxics",
              {"type": "latency", "stream": "downstream",
               "attributes": {"latency": 30}})
        with T.connect(T.parse_addr(p["listen"])) as s:
            rtts = [roundtrip(s) for _ in range(20)]
        T.expect(min(rtts) >= 0.030, "early: %r" % min(rtts))
        text, v = metrics(d)
        count = v[name + "_count"] - before
        T.expect(count >= 20, "%d releases counted" % count)
        les = [k for k in v if k.startswith(name + "_bucket")]
        cum = [v[k] for k in les]
        T.expect(cum == sorted(cum) and les[-1].endswith('le="+Inf"}') and
                 cum[-1] == v[name + "_count"], "buckets %r" % les)
        within_ms = v[name + '_bucket{le="0.001"}']
        T.expect(within_ms >= v[name + "_count"] / 2,
                 "fewer than half within 1 ms: %r" % v)


def test_events():
    with Tardyd() as d, T.echo_server() as echo:
        p = create(d, "e", echo.spec)
        st, ev = d.api("GET", "/events")
        T.expect(st == 200 and ev == [], "events %r" % ev)
        with T.connect(T.parse_addr(p["listen"])) as s:
            roundtrip(s)
            me = "%s:%d" % s.getsockname()
        deadline = T.now() + 2
        while T.now() < deadline:
            st, ev = d.api("GET", "/events")
            if any(e["type"] == "close" for e in ev):
                break
            time.sleep(0.01)
        accepts = [e for e in ev if e["type"] == "accept"]
        T.expect(len(accepts) == 1 and accepts[0]["proxy"] == "e" and
                 accepts[0]["peer"] == me and accepts[0]["connection"] == 1,
                 "events %r" % ev)
        last = ev[-1]["id"]
        st, newer = d.api("GET", "/events?since=%d" % last)
        T.expect(st == 200 and newer == [], "since=last: %r" % newer)
        st, newer = d.api("GET", "/events?since=%d" % (last - 1))
        T.expect([e["id"] for e in newer] == [last], "since: %r" % newer)
        for bad in ("abc", "-1", "", "1e3", "99999999999999999999999"):
            expect_error(d.api("GET", "/events?since=" + bad), 400, "since")


def test_connections():
    with Tardyd() as d, T.echo_server() as echo:
        p = create(d, "c", echo.spec)
        st, conns = d.api("GET", "/proxies/c/connections")
        T.expect(st == 200 and conns == [], "%r" % conns)
        s1 = T.connect(T.parse_addr(p["listen"]))
        s2 = T.connect(T.parse_addr(p["listen"]))
        roundtrip(s1, b"a" * 10)
        roundtrip(s2, b"b" * 20)
        d.api("POST", "/proxies/c/toxics", {"type": "noop", "name": "n"})
        st, conns = d.api("GET", "/proxies/c/connections")
        T.expect(st == 200 and len(conns) == 2, "%r" % conns)
        by_peer = {c["peer"]: c for c in conns}
        c1 = by_peer["%s:%d" % s1.getsockname()]
        c2 = by_peer["%s:%d" % s2.getsockname()]
        T.expect(c1["id"] == 1 and c1["state"] == "open" and
                 c1["bytes_up"] == 10 and c1["bytes_down"] == 10 and
                 c1["toxics"] == ["n"] and c1["age_ms"] >= 0,
                 "connection 1: %r" % c1)
        T.expect(c2["id"] == 2 and c2["bytes_up"] == 20, "%r" % c2)
        s1.close()
        s2.close()
        expect_error(d.api("GET", "/proxies/x/connections"), 404,
                     "proxy not found")


# --- who may ask ------------------------------------------------------------

def test_browsers_refused():
    with Tardyd() as d:
        expect_error(d.api("GET", "/version", headers={
            "User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"}), 403,
            "User agent not allowed")
        st, _ = d.api("GET", "/version", headers={"User-Agent": "curl/8"})
        T.expect(st == 200, "curl refused")


def test_token():
    env = dict(os.environ, TARDY_API_TOKEN="s3cret")
    with Tardyd(env=env) as d:
        expect_error(d.api("GET", "/version"), 401, "token")
        expect_error(d.api("GET", "/proxies", headers={
            "Authorization": "Bearer wrong"}), 401, "token")
        expect_error(d.api("GET", "/proxies", headers={
            "Authorization": "Bearer s3cre"}), 401, "token")
        expect_error(d.api("GET", "/proxies", headers={
            "Authorization": "Basic s3cret"}), 401, "token")
        expect_error(d.api("POST", "/reset"), 401, "token")
        for auth in ("Bearer s3cret", "bearer s3cret"):
            st, body = d.api("GET", "/version",
                             headers={"Authorization": auth})
            T.expect(st == 200, "%s: %d %r" % (auth, st, body))


def test_token_rotated_by_reload():
    # A leaked token is rotated with SIGHUP: the old one stops working at
    # once, the new one works; removing it opens the (loopback) API.
    env = {k: v for k, v in os.environ.items() if k != "TARDY_API_TOKEN"}
    with Tardyd("[tardy]\napi_token = old-token\n", env=env) as d:
        old = {"Authorization": "Bearer old-token"}
        new = {"Authorization": "Bearer new-token"}
        T.expect(d.api("GET", "/version", headers=old)[0] == 200, "old")
        d.write_config("[tardy]\napi_token = new-token\n")
        d.reload()
        expect_error(d.api("GET", "/version", headers=old), 401, "token")
        T.expect(d.api("GET", "/version", headers=new)[0] == 200, "new")
        d.write_config("")
        d.reload()
        T.expect(d.api("GET", "/version")[0] == 200, "no token after all")


def test_open_api_needs_a_token():
    env = {k: v for k, v in os.environ.items() if k != "TARDY_API_TOKEN"}
    d = T.Tardyd(args=["-a", "0.0.0.0:0"], env=env, wait=False)
    try:
        rc = d.proc.wait(5 * T.SLOW)
        T.expect(rc == 1, "exit %d" % rc)
        T.expect("api_token" in d.log() and "loopback" in d.log(),
                 "message: %s" % d.log())
        T.expect(d.read_ready() is None, "wrote a ready file")
    finally:
        d.close()


def test_unix_path_of_a_full_listener_does_not_hang():
    # A unix proxy under drop_syn has a full backlog: a blocking connect()
    # probe of its path waited forever, and the whole daemon with it.
    with Tardyd() as d, T.echo_server() as echo:
        path = os.path.join(d.dir, "held.sock")
        create(d, "a", echo.spec, listen="unix:" + path)
        st, _ = d.api("POST", "/proxies/a/toxics", {"type": "drop_syn"})
        T.expect(st == 200, "drop_syn: %d" % st)
        # A stranger's listener with a full backlog, too.
        other = os.path.join(d.dir, "other.sock")
        busy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        busy.bind(other)
        busy.listen(0)
        fillers = []
        for _ in range(3):
            f = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            f.setblocking(False)
            try:
                f.connect(other)
            except OSError:
                pass
            fillers.append(f)
        for name, p in (("b", path), ("c", other)):
            t0 = T.now()
            st, e = d.api("POST", "/proxies", {"name": name,
                          "upstream": echo.spec, "listen": "unix:" + p})
            T.expect(st == 500 and "address already in use" in e["error"],
                     "%s: %d %r" % (p, st, e))
            T.expect(T.now() - t0 < 1.0, "took %.1f s" % (T.now() - t0))
        T.expect(d.api("GET", "/version")[0] == 200, "API answers")
        busy.close()
        for f in fillers:
            f.close()


def test_unix_path_of_a_disabled_proxy_is_not_taken():
    # A disabled (or refusing) unix proxy holds a bound socket that does
    # not listen: a probe took it for stale, and a second proxy took the
    # path; deleting the first then removed the second's socket.
    with Tardyd() as d, T.echo_server() as echo:
        path = os.path.join(d.dir, "mine.sock")
        create(d, "a", echo.spec, listen="unix:" + path, enabled=False)
        st, e = d.api("POST", "/proxies", {"name": "b", "upstream": echo.spec,
                                           "listen": "unix:" + path})
        T.expect(st == 500 and "by proxy a" in e["error"], "%d %r" % (st, e))
        st, _ = d.api("POST", "/proxies/a/toxics", {"type": "refuse"})
        st, e = d.api("POST", "/populate", [{"name": "c", "upstream":
                                             echo.spec, "listen": "unix:" +
                                             path}])
        T.expect(st == 500 and "by proxy a" in e["error"], "%d %r" % (st, e))
        st, m = d.api("GET", "/metrics")
        T.expect('tardy_connections_accepted_total{proxy="a"} 0' in m,
                 "a probe became a connection of proxy a")
        T.expect(os.path.exists(path), "a's socket is gone")
        # Once a is deleted, the path is free.
        T.expect(d.api("DELETE", "/proxies/a")[0] == 204, "delete a")
        b = create(d, "b", echo.spec, listen="unix:" + path)
        with T.connect(T.parse_addr(b["listen"])) as s:
            T.expect(roundtrip(s) < 1, "b serves")


def test_unix_socket_api():
    import tempfile
    tmp = tempfile.mkdtemp(prefix="tardytest.")
    path = os.path.join(tmp, "api.sock")
    try:
        with Tardyd(args=["-a", "unix:" + path]) as d:
            T.expect(d.ready["api"] == "unix:" + path, "%r" % d.ready)
            st = os.stat(path)
            T.expect(stat.S_ISSOCK(st.st_mode) and
                     stat.S_IMODE(st.st_mode) == 0o660,
                     "mode %o" % st.st_mode)
            code, _, body = raw_request(
                (socket.AF_UNIX, path),
                b"GET /version HTTP/1.1\r\nHost: localhost\r\n"
                b"Connection: close\r\n\r\n")
            T.expect(code == 200 and b"version" in body, "%d %r" %
                     (code, body))
        T.expect(not os.path.exists(path), "socket left behind")
    finally:
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(tmp)


# --- routing ----------------------------------------------------------------

def test_routing():
    with Tardyd() as d, T.echo_server() as echo:
        create(d, "a.b-c_1", echo.spec)
        for path in ("/nope", "/proxies/", "/proxies//toxics", "//version",
                     "/version/", "/versionx", "/proxies/a.b-c_1/",
                     "/proxies/a.b-c_1/toxics/x/y", "/proxies/a.b-c_1/foo",
                     "/proxies/a%00b"):
            expect_error(d.api("GET", path), 404, "not found")
        st, p = d.api("GET", "/proxies/a%2Eb%2Dc_1")
        T.expect(st == 200 and p["name"] == "a.b-c_1", "percent-decoded")
        st, _ = d.api("GET", "/version?x=1")
        T.expect(st == 200, "query string")
        # A name with '/' cannot be made, so %2F finds nothing.
        expect_error(d.api("GET", "/proxies/a%2Fb"), 404, "proxy not found")
        for method, path, allow in (("PUT", "/proxies", "GET, POST"),
                                    ("DELETE", "/version", "GET"),
                                    ("GET", "/reset", "POST"),
                                    ("PUT", "/proxies/a.b-c_1",
                                     "GET, POST, PATCH, DELETE")):
            code, headers, body = raw_request(
                T.parse_addr(d.ready["api"]),
                ("%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                 "Content-Length: 0\r\n\r\n" % (method, path)).encode())
            T.expect(code == 405 and headers.get("allow") == allow and
                     json.loads(body) == {"error": "method not allowed",
                                          "status": 405},
                     "%s %s: %d %r %r" % (method, path, code, headers, body))
        code, _, _ = raw_request(
            T.parse_addr(d.ready["api"]),
            b"HEAD /version HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        T.expect(code == 405, "HEAD: %d" % code)


def test_ipv6():
    if not T.have_ipv6():
        T.skip("no IPv6 loopback")
    with Tardyd() as d, T.echo_server() as echo:
        p = create(d, "six", echo.spec, listen="[::1]:0")
        T.expect(p["listen"].startswith("[::1]:") and
                 not p["listen"].endswith(":0"), "listen %r" % p["listen"])
        with T.connect(T.parse_addr(p["listen"])) as s:
            roundtrip(s)


def test_slow_client_does_not_block():
    """A client that sends half a request holds up no one else."""
    with Tardyd() as d:
        api = T.parse_addr(d.ready["api"])
        slow = T.connect(api)
        slow.sendall(b"POST /proxies HTTP/1.1\r\nHost: localhost\r\n"
                     b"Content-Length: 100\r\n\r\n{\"name\":")
        t0 = T.now()
        st, _ = d.api("GET", "/version")
        T.expect(st == 200 and T.now() - t0 < 1, "blocked by a slow client")
        slow.close()


def test_keepalive_and_many_requests():
    """Several requests on one connection, and the API stays responsive."""
    with Tardyd() as d:
        s = T.connect(T.parse_addr(d.ready["api"]))
        req = b"GET /version HTTP/1.1\r\nHost: localhost\r\n\r\n"
        s.sendall(req * 3)
        buf = b""
        deadline = T.now() + 5
        while buf.count(b'"version"') < 3 and T.now() < deadline:
            buf += s.recv(65536)
        T.expect(buf.count(b"HTTP/1.1 200") == 3, "pipelined: %r" % buf)
        s.close()



def pipelined(addr, data, methods, timeout=5):
    """Send requests on one connection (the last says Connection: close)
    and read to EOF; returns the replies, (status line, headers, body),
    framed as a client must: a reply to HEAD, a 204 or a 304 has no
    body, any other as many bytes as its Content-Length says."""
    buf = send_read_all(addr, data, timeout)
    replies = []
    for method in methods:
        T.expect(buf.startswith(b"HTTP/"), "reply %d is %r" %
                 (len(replies), buf))
        head, sep, buf = buf.partition(b"\r\n\r\n")
        T.expect(sep, "a reply cut short: %r" % head)
        lines = head.decode().split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        body = b""
        if method != "HEAD" and lines[0].split(" ")[1] not in ("204",
                                                               "304"):
            T.expect("content-length" in headers,
                     "%s: a body of no length on a connection kept open, "
                     "where the next reply follows: %r" % (lines[0], buf))
            n = int(headers["content-length"])
            body, buf = buf[:n], buf[n:]
        replies.append((lines[0], headers, body))
    T.expect(buf == b"", "bytes after the last reply: %r" % buf)
    return replies


def test_reply_length_in_every_version():
    """evhttp keeps the connection open after a keep-alive request in
    HTTP/0.9 or a version like "HTTP/-1.1", and after a CONNECT, but
    gives those replies no Content-Length: tardyd does, or the next reply
    would be read as the end of the body."""
    with Tardyd() as d:
        api = T.parse_addr(d.ready["api"])
        last = (b"GET /version HTTP/1.1\r\nHost: localhost\r\n"
                b"Connection: close\r\n\r\n")
        for method, target, version, status, body in (
                ("GET", "/version", "HTTP/0.9", 200, None),
                ("GET", "/nope", "HTTP/-1.1", 404,
                 {"error": "not found", "status": 404}),
                ("POST", "/reset", "HTTP/0.1", 204, b""),
                ("CONNECT", "127.0.0.1:1", "HTTP/1.1", 404,
                 {"error": "not found", "status": 404})):
            first = ("%s %s %s\r\nHost: localhost\r\n"
                     "Connection: keep-alive\r\n\r\n" %
                     (method, target, version)).encode()
            (l1, h1, b1), (l2, _, b2) = pipelined(api, first + last,
                                                  [method, "GET"])
            T.expect(l1.startswith("%s %d " % (version, status)),
                     "%s %s: %s" % (method, version, l1))
            if body is None:
                T.expect("version" in json.loads(b1), "%r" % b1)
            elif isinstance(body, dict):
                T.expect(json.loads(b1) == body, "%r" % b1)
            else:
                T.expect(b1 == body and "content-length" not in h1,
                         "a %d with %r" % (status, h1))
            T.expect(l2.startswith("HTTP/1.1 200 ") and
                     "version" in json.loads(b2), "then %s %r" % (l2, b2))


def test_head_reply_has_no_body():
    """A reply to HEAD has no body, whatever version the client spoke and
    whoever answers it (tardyd's 405, evhttp's 400): the next reply
    follows its head at once."""
    with Tardyd() as d:
        api = T.parse_addr(d.ready["api"])
        data = (b"HEAD /version HTTP/1.1\r\nHost: localhost\r\n\r\n"
                b"GET /version HTTP/1.1\r\nHost: localhost\r\n\r\n"
                b"HEAD /proxies HTTP/1.0\r\nHost: localhost\r\n"
                b"Connection: keep-alive\r\n\r\n"
                b"HEAD /version HTTP/0.9\r\nHost: localhost\r\n"
                b"Connection: keep-alive\r\n\r\n"
                b"HEAD /version HTTP/9.9\r\n\r\n")
        replies = pipelined(api, data, ["HEAD", "GET", "HEAD", "HEAD",
                                        "HEAD"])
        got = [(line.split(" ", 2)[:2], h.get("allow")) for line, h, _ in
               replies]
        T.expect(got == [(["HTTP/1.1", "405"], "GET"),
                         (["HTTP/1.1", "200"], None),
                         (["HTTP/1.0", "405"], "GET, POST"),
                         (["HTTP/0.9", "405"], "GET"),
                         (["HTTP/1.1", "400"], None)], "%r" % got)
        T.expect("version" in json.loads(replies[1][2]), "%r" % (replies[1],))


T.main(globals())

"""Bad requests to the control API: each gets the right status and a
message that says what is wrong, the daemon keeps serving, and nothing is
half applied (the proxies and toxics are exactly as before)."""

import atexit
import json
import socket

import tardytest as T

P = "/proxies"
PT = "/proxies/p/toxics"
UP = "127.0.0.1:1"       # never connected to: nothing listens there

# Filled in by the setup test: the daemon, an address it holds, and the
# state every bad request must leave untouched.
S = {}


def raw(s):
    return s.encode() if isinstance(s, str) else s


def proxy(**kw):
    body = {"name": "x", "upstream": UP}
    body.update(kw)
    return body


def toxic(type_="latency", **attrs):
    return {"type": type_, "attributes": attrs}


def in_use():
    """An address taken by another socket: the proxy's."""
    return S["busy"]


def api_addr():
    """An address p could not move to: the API's."""
    return S["d"].ready["api"]


# (method, path, body, status, substring). body: dict/list sent as JSON,
# bytes or str sent as is, a callable called first (for addresses known
# only at run time), None for no body.
CASES = [
    # Malformed JSON.
    ("POST", P, b'{"name": "x", "upstream": "127.0.0.1:1"', 400,
     "bad request body"),
    ("POST", P, b"", 400, "bad request body"),
    ("POST", P, b"[" * 10000 + b"]" * 10000, 400, "bad request body"),
    ("POST", P, b'{"a":' * 10000 + b"1" + b"}" * 10000, 400,
     "bad request body"),
    ("POST", P, b'{"name": "x", "upstream": "127.0.0.1:1", '
     b'"enabled": 1e400}', 400, "bad request body"),
    ("POST", PT, b'{"type": "latency", "attributes": '
     b'{"latency": 18446744073709551616}}', 400, "bad request body"),
    ("POST", P, b'{"name": "\xff\xfe", "upstream": "127.0.0.1:1"}', 400,
     "bad request body"),
    ("POST", P, b'{"name": "a\\u0000b", "upstream": "127.0.0.1:1"}', 400,
     "bad request body"),
    ("POST", P, [proxy()], 400, "bad request body"),
    ("POST", P, b'"just a string"', 400, "bad request body"),
    ("POST", P, b"x" * (2 * 1024 * 1024), 413, None),

    # Proxies: wrong types, names, addresses.
    ("POST", P, proxy(enabled="yes"), 400, "enabled"),
    ("POST", P, proxy(enabled=1), 400, "enabled"),
    ("POST", P, proxy(name=5), 400, "name"),
    ("POST", P, proxy(name=""), 400, "missing required field: name"),
    ("POST", P, proxy(name="a/b"), 400, "name"),
    ("POST", P, proxy(name="a b"), 400, "name"),
    ("POST", P, proxy(name="x" * 129), 400, "name"),
    ("POST", P, {"name": "x"}, 400, "missing required field: upstream"),
    ("POST", P, proxy(upstream=80), 400, "upstream"),
    ("POST", P, proxy(upstream="nohostport"), 400, "upstream"),
    ("POST", P, proxy(upstream="127.0.0.1:http"), 400, "upstream"),
    ("POST", P, proxy(listen="127.0.0.1:99999"), 400, "listen"),
    ("POST", P, proxy(listen="[::1"), 400, "listen"),
    ("POST", P, proxy(listen="unix:/" + "d" * 200), 400, "listen"),
    ("POST", P, lambda: proxy(listen=in_use()), 500, "in use"),
    ("POST", P, proxy(name="p"), 409, "proxy already exists"),

    # Toxics.
    ("POST", PT, toxic("nope"), 400, "invalid toxic type"),
    ("POST", PT, {"attributes": {}}, 400, "invalid toxic type"),
    ("POST", PT, {"type": 5}, 400, "type"),
    ("POST", PT, {"type": "latency", "stream": "sideways"}, 400,
     "stream was invalid, can be either upstream or downstream"),
    ("POST", PT, {"type": "latency", "stream": 1}, 400, "stream"),
    ("POST", PT, {"type": "latency", "toxicity": "x"}, 400, "toxicity"),
    ("POST", PT, {"type": "latency", "toxicity": 1.5}, 400, "toxicity"),
    ("POST", PT, {"type": "latency", "toxicity": -0.1}, 400, "toxicity"),
    ("POST", PT, toxic(latency=-1), 400, "latency"),
    ("POST", PT, toxic(latency=1.5), 400, "latency"),
    ("POST", PT, toxic(latency=100.0), 400, "latency"),
    ("POST", PT, toxic(latency="10"), 400, "latency"),
    ("POST", PT, toxic(jitter=10 ** 12), 400, "jitter"),
    ("POST", PT, toxic("bandwidth", rate=-1), 400, "rate"),
    ("POST", PT, toxic("bandwidth", rate=2 ** 63 - 1), 400, "rate"),
    ("POST", PT, toxic("slicer", average_size=0), 400, "average_size"),
    ("POST", PT, toxic("slicer", delay=10), 400, "average_size"),
    ("POST", PT, toxic("limit_data", bytes=1000.0), 400, "bytes"),
    ("POST", PT, toxic("limit_data", bytes=-1), 400, "bytes"),
    ("POST", PT, toxic("timeout", timeout=10 ** 15), 400, "timeout"),
    ("POST", PT, toxic("reset_peer", timeout=-5), 400, "timeout"),
    ("POST", PT, toxic("slow_close", delay="x"), 400, "delay"),
    ("POST", PT, toxic("noop", every=0), 400, "every"),
    ("POST", PT, {"type": "drop_syn", "toxicity": 0.5}, 400, "toxicity"),
    ("POST", PT, {"type": "latency", "attributes": "x"}, 400,
     "attributes"),
    ("POST", PT, {"type": "latency", "attributes": [1]}, 400,
     "attributes"),
    ("POST", PT, {"type": "noop", "name": "t"}, 409,
     "toxic already exists"),
    ("POST", PT, {"type": "noop", "name": "a/b"}, 400, "name"),
    ("POST", PT, {"type": "noop", "name": "n" * 129}, 400, "name"),
    ("POST", "/proxies/nope/toxics", toxic(), 404, "proxy not found"),

    # Updates.
    ("PATCH", "/proxies/p", {"enabled": "no"}, 400, "enabled"),
    ("PATCH", "/proxies/p", {"listen": "bad"}, 400, "listen"),
    ("PATCH", "/proxies/p", {"upstream": "bad"}, 400, "upstream"),
    ("PATCH", "/proxies/p", lambda: {"listen": api_addr()}, 500, "in use"),
    ("PATCH", "/proxies/p", [], 400, "bad request body"),
    ("POST", "/proxies/p", b"{", 400, "bad request body"),
    ("PATCH", "/proxies/nope", {"enabled": False}, 404, "proxy not found"),
    ("PATCH", PT + "/t", {"toxicity": 2}, 400, "toxicity"),
    ("PATCH", PT + "/t", {"toxicity": True}, 400, "toxicity"),
    ("PATCH", PT + "/t", {"attributes": {"latency": -1}}, 400, "latency"),
    ("PATCH", PT + "/t", {"attributes": {"latency": 5, "jitter": 0.5}}, 400,
     "jitter"),
    ("PATCH", PT + "/t", b'{"toxicity": 0.5', 400, "bad request body"),
    ("PATCH", PT + "/nope", {"toxicity": 0.5}, 404, "toxic not found"),
    ("DELETE", PT + "/nope", None, 404, "toxic not found"),
    ("DELETE", "/proxies/nope", None, 404, "proxy not found"),

    # Populate: nothing applies unless everything can.
    ("POST", "/populate", {"name": "x"}, 400, "bad request body"),
    ("POST", "/populate", [proxy(name="y"), {"name": "z"}], 400,
     "missing required field: upstream at proxy 2"),
    ("POST", "/populate", [proxy(name="y"), {"upstream": UP}], 400,
     "missing required field: name at proxy 2"),
    ("POST", "/populate", [proxy(name="y"), proxy(name="y")], 400,
     "duplicate"),
    ("POST", "/populate", [proxy(name="y"), 5], 400, "bad request body"),
    ("POST", "/populate", [proxy(name="y"), proxy(name="a b")], 400,
     "name"),
    ("POST", "/populate", [proxy(name="y"), proxy(name="z",
     listen="127.0.0.1:70000")], 400, "listen at proxy 2"),
    ("POST", "/populate", lambda: [proxy(name="y"), proxy(name="z"),
     proxy(name="w", listen=in_use())], 500, "in use"),
    ("POST", "/populate", lambda: [proxy(name="p", upstream="127.0.0.1:2"),
     proxy(name="w", listen=in_use())], 500, "in use"),

    # Paths and methods.
    ("GET", "/nope", None, 404, "not found"),
    ("GET", "/proxies/", None, 404, "not found"),
    ("GET", PT + "/t/x", None, 404, "not found"),
    ("GET", "/proxies/p%00", None, 404, "not found"),
    ("PUT", P, proxy(), 405, "method not allowed"),
    ("DELETE", "/version", None, 405, "method not allowed"),
    ("POST", "/version", None, 405, "method not allowed"),
    ("OPTIONS", P, None, 405, "method not allowed"),
    ("GET", "/events?since=abc", None, 400, "since"),
    ("GET", "/events?since=-1", None, 400, "since"),
    ("GET", "/events?since=0x10", None, 400, "since"),
]

# Requests libevent refuses before tardy sees them: they too get a JSON
# error, {"error", "status"}, and a request id.
RAW_CASES = [
    ("unknown method", b"FOO /version HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    ("garbage", b"\x00\x01\x02 junk\r\n\r\n", 400),
    ("bad content length", b"POST /proxies HTTP/1.1\r\nHost: x\r\n"
     b"Content-Length: -5\r\n\r\n", 400),
    ("headers too large", b"GET /version HTTP/1.1\r\nHost: x\r\nX-Big: " +
     b"a" * (80 * 1024) + b"\r\n\r\n", 400),
    ("chunked body too large", b"POST /proxies HTTP/1.1\r\nHost: x\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n" +
     (b"10000\r\n" + b"x" * 0x10000 + b"\r\n") * 20 + b"0\r\n\r\n", 413),
]


def state():
    st, proxies = S["d"].api("GET", "/proxies")
    T.expect(st == 200, "GET /proxies: %d" % st)
    return proxies


def still_fine():
    d = S["d"]
    st, v = d.api("GET", "/version")
    T.expect(st == 200 and "version" in v, "daemon not serving: %d" % st)
    now = state()
    T.expect(now == S["before"], "state changed:\n%s\nwas:\n%s" % (
        json.dumps(now, sort_keys=True), json.dumps(S["before"],
                                                    sort_keys=True)))


def test_setup():
    d = T.Tardyd(args=["--exit-with-parent"])
    S["d"] = d
    atexit.register(d.close)
    S["echo"] = T.echo_server()
    atexit.register(S["echo"].close)
    st, p = d.api("POST", P, {"name": "p", "upstream": S["echo"].spec})
    T.expect(st == 201, "create p: %d %r" % (st, p))
    st, t = d.api("POST", PT, {"type": "latency", "name": "t",
                               "attributes": {"latency": 1}})
    T.expect(st == 200, "create t: %d %r" % (st, t))
    # An address that is taken: the proxy's own.
    S["busy"] = p["listen"]
    S["before"] = state()


def make_case(method, path, body, status, substring):
    def run():
        if callable(body):
            b = body()
        else:
            b = body
        if isinstance(b, (bytes, str)):
            st, reply = S["d"].api(method, path, raw=raw(b))
        else:
            st, reply = S["d"].api(method, path, b)
        T.expect(st == status, "%s %s: status %d, expected %d: %r" % (
            method, path, st, status, reply))
        if substring is not None:
            T.expect(isinstance(reply, dict) and
                     reply.get("status") == status and
                     substring in reply.get("error", ""),
                     "%s %s: %r does not say %r" % (method, path, reply,
                                                    substring))
        still_fine()
    return run


def make_raw_case(data, status):
    def run():
        fam, sa = T.parse_addr(S["d"].ready["api"])
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(5 * T.SLOW)
        s.connect(sa)
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        buf = b""
        try:
            while True:                 # the reply ends with the connection
                d = s.recv(65536)
                if not d:
                    break
                buf += d
        except ConnectionResetError:
            pass
        s.close()
        T.expect(buf.startswith(b"HTTP/1.1 %d" % status),
                 "got %r" % buf[:80])
        head, _, body = buf.partition(b"\r\n\r\n")
        headers = dict(line.split(b": ", 1)
                       for line in head.split(b"\r\n")[1:])
        T.expect(headers.get(b"Content-Type") == b"application/json",
                 "content type: %r" % head)
        T.expect(len(headers.get(b"X-Toxiproxy-Request-Id", b"")) == 20,
                 "request id: %r" % head)
        reply = json.loads(body)
        T.expect(reply["status"] == status and reply["error"],
                 "body: %r" % body)
        T.expect(int(headers[b"Content-Length"]) == len(body),
                 "length: %r" % head)
        still_fine()
    return run


for _i, _c in enumerate(CASES):
    _name = "test_bad_%02d_%s_%s" % (_i + 1, _c[0].lower(), "".join(
        ch if ch.isalnum() else "_" for ch in _c[1].split("?")[0]).strip("_"))
    globals()[_name] = make_case(*_c)
for _i, (_what, _data, _status) in enumerate(RAW_CASES):
    globals()["test_raw_%02d_%s" % (_i + 1, _what.replace(" ", "_"))] = \
        make_raw_case(_data, _status)


def test_proxy_still_forwards():
    p = state()["p"]
    with T.connect(T.parse_addr(p["listen"])) as s:
        s.sendall(b"still here")
        T.expect(T.recv_exactly(s, 10) == b"still here", "no echo")


def test_teardown():
    code = S["d"].stop()
    log = S["d"].log()
    T.expect(code == 0 and "Sanitizer" not in log and
             "runtime error" not in log,
             "tardyd exited with %d: %s" % (code, log[-3000:]))


T.main(globals())

"""GET /metrics carries Toxiproxy 2.12's proxy metrics next to tardy's own
(issue 13): toxiproxy_proxy_received_bytes_total and
toxiproxy_proxy_sent_bytes_total, with Toxiproxy's HELP and TYPE lines and
its labels in its order, counting what Toxiproxy counts: received is what
a direction read from its source, sent what it passed on to its
destination, so a toxic that swallows or holds bytes shows between them.
Every scrape must also be valid Prometheus text format."""

import re
import socket
import threading
import time

import tardytest as T

RECEIVED = "toxiproxy_proxy_received_bytes_total"
SENT = "toxiproxy_proxy_sent_bytes_total"
LABELS = ["direction", "listener", "proxy", "upstream"]


Tardyd = T.CheckedTardyd


# --- the text format ------------------------------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
SAMPLE = re.compile(r"(%s)(?:\{(.*)\})? (\S+)(?: (-?[0-9]+))?$" % NAME)
PAIR = re.compile(r'(%s)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)' % LABEL)
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def family_of(name, types):
    """The family a sample belongs to: histograms and summaries own their
    _bucket, _sum and _count series."""
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and types.get(base) in ("histogram",
                                                          "summary"):
            return base
    return name


def parse(text):
    """Prometheus text format 0.0.4, strictly: returns {family: {"type",
    "help", "samples": [(name, [(label, value), ...], value)]}} and fails
    on anything a scraper could reject or misread."""
    T.expect(text.endswith("\n"), "no newline at the end")
    fams, types, done, series = {}, {}, set(), set()
    current = None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = "line %d %r" % (n, line)
        if line.startswith("#"):
            m = re.match(r"# (HELP|TYPE) (%s) ?(.*)$" % NAME, line)
            if m is None:
                continue        # a comment
            kind, name, rest = m.groups()
            T.expect(name not in done, "%s: family %s seen before" %
                     (where, name))
            f = fams.setdefault(name, {"type": None, "help": None,
                                       "samples": []})
            T.expect(not f["samples"], "%s after its samples" % where)
            if kind == "HELP":
                T.expect(f["help"] is None, "%s: second HELP" % where)
                T.expect(re.fullmatch(r"(?:[^\\]|\\[\\n])*", rest),
                         "%s: bad escape" % where)
                f["help"] = rest
            else:
                T.expect(f["type"] is None, "%s: second TYPE" % where)
                T.expect(rest in TYPES, "%s: unknown type" % where)
                f["type"] = types[name] = rest
            if current is not None and current != name:
                done.add(current)
            current = name
            continue
        T.expect(line.strip() != "", "%s: empty line" % where)
        m = SAMPLE.match(line)
        T.expect(m is not None, "%s: not a sample" % where)
        name, labels, value = m.group(1), m.group(2), m.group(3)
        fam = family_of(name, types)
        T.expect(fam in types, "%s: no TYPE before it" % where)
        T.expect(fam == current, "%s: family %s is split" % (where, fam))
        pairs, pos = [], 0
        while labels is not None and pos < len(labels):
            p = PAIR.match(labels, pos)
            T.expect(p is not None, "%s: bad labels" % where)
            v = re.sub(r"\\(.)", lambda e: {"n": "\n"}.get(e.group(1),
                       e.group(1)), p.group(2))
            pairs.append((p.group(1), v))
            pos = p.end()
        T.expect(len({k for k, _ in pairs}) == len(pairs),
                 "%s: a label twice" % where)
        key = (name, frozenset(pairs))
        T.expect(key not in series, "%s: series twice" % where)
        series.add(key)
        try:
            v = float(value)
        except ValueError:
            raise AssertionError("%s: bad value" % where)
        fams[fam]["samples"].append((name, pairs, v))
    return fams


def scrape(d):
    st, text = d.api("GET", "/metrics")
    T.expect(st == 200 and isinstance(text, str), "metrics: %d" % st)
    return text, parse(text)


def toxiproxy(fams, proxy):
    """{(family, direction): value} of one proxy's Toxiproxy series,
    checking their labels: exactly Toxiproxy's, in its order."""
    out = {}
    for fam in (RECEIVED, SENT):
        f = fams.get(fam)
        T.expect(f is not None and f["type"] == "counter" and
                 f["help"] == "", "family %s: %r" % (fam, f))
        for name, pairs, v in f["samples"]:
            T.expect(name == fam, "sample %s in %s" % (name, fam))
            T.expect([k for k, _ in pairs] == LABELS,
                     "labels %r" % pairs)
            lab = dict(pairs)
            if lab["proxy"] != proxy:
                continue
            T.expect((fam, lab["direction"]) not in out,
                     "two %s for %s" % (fam, lab))
            T.expect(v == int(v) and v >= 0, "value %r" % v)
            out[fam, lab["direction"]] = int(v)
    return out


def counts(d, proxy):
    """(received up, sent up, received down, sent down)."""
    c = toxiproxy(scrape(d)[1], proxy)
    T.expect(len(c) == 4, "series of %s: %r" % (proxy, c))
    return (c[RECEIVED, "upstream"], c[SENT, "upstream"],
            c[RECEIVED, "downstream"], c[SENT, "downstream"])


def wait_counts(d, proxy, want, timeout=3.0):
    deadline = T.now() + timeout * T.SLOW
    while True:
        got = counts(d, proxy)
        if got == want or T.now() > deadline:
            break
        time.sleep(0.01)
    T.expect(got == want, "%s: received/sent up, received/sent down "
             "%r, expected %r" % (proxy, got, want))


def create(d, name, upstream, **kw):
    st, p = d.api("POST", "/proxies", dict(name=name, upstream=upstream,
                                           **kw))
    T.expect(st == 201, "create %s: %d %r" % (name, st, p))
    return p


def doubler():
    """A server that answers each chunk with the chunk twice, so the two
    directions carry different counts."""
    def handler(c):
        while True:
            d = c.recv(65536)
            if not d:
                return
            c.sendall(d + d)
    return T.Server(handler)


# --- tests ----------------------------------------------------------------

def test_families_names_and_labels():
    """Toxiproxy's own lines, and a proxy's series at 0 before any
    connection (Toxiproxy shows none until a connection ends)."""
    with Tardyd() as d, T.echo_server() as echo:
        p = create(d, "redis", echo.spec)
        text, fams = scrape(d)
        for fam in (RECEIVED, SENT):
            T.expect("# HELP %s \n# TYPE %s counter\n" % (fam, fam) in text,
                     "HELP/TYPE of %s: %s" % (fam, text))
            for direction in ("upstream", "downstream"):
                line = ('%s{direction="%s",listener="%s",proxy="redis",'
                        'upstream="%s"} 0\n' % (fam, direction,
                                                p["listen"], echo.spec))
                T.expect(line in text, "no %r in %s" % (line, text))
        T.expect(counts(d, "redis") == (0, 0, 0, 0), "not 0")
        # Next to tardy's own, which stay as they were.
        T.expect(fams["tardy_bytes_total"]["type"] == "counter" and
                 len(fams["tardy_bytes_total"]["samples"]) == 2,
                 "tardy_bytes_total %r" % fams.get("tardy_bytes_total"))


def test_counts_both_ways_live():
    """Bytes up and down, each direction under its own label, counted
    while the connection is open and kept once it ends; a bulk transfer
    too (it goes through splice(2))."""
    with Tardyd() as d, doubler() as up:
        p = create(d, "dbl", up.spec)
        s = T.connect(T.parse_addr(p["listen"]))
        s.sendall(b"u" * 1000)
        T.expect(T.recv_exactly(s, 2000) == b"u" * 2000, "reply")
        wait_counts(d, "dbl", (1000, 1000, 2000, 2000))
        s.close()
        deadline = T.now() + 2 * T.SLOW
        while T.now() < deadline:
            _, fams = scrape(d)
            active = fams["tardy_connections_active"]["samples"]
            if active[0][2] == 0:
                break
            time.sleep(0.01)
        T.expect(active[0][2] == 0, "connection still active")
        T.expect(counts(d, "dbl") == (1000, 1000, 2000, 2000),
                 "after close: %r" % (counts(d, "dbl"),))

    size = 4 << 20
    with Tardyd() as d, T.echo_server() as echo:
        p = create(d, "bulk", echo.spec)
        s = T.connect(T.parse_addr(p["listen"]), timeout=10)
        sender = threading.Thread(target=s.sendall, args=(b"b" * size,))
        sender.start()
        got = T.recv_exactly(s, size, timeout=10)
        sender.join()
        T.expect(len(got) == size, "echoed %d of %d" % (len(got), size))
        wait_counts(d, "bulk", (size, size, size, size))
        s.close()


def test_swallowed_and_held_bytes():
    """Toxiproxy's timeout toxic (timeout 0) swallows what it reads:
    received, never sent. A latency toxic holds bytes: received at once,
    sent when released."""
    with Tardyd() as d, T.echo_server() as echo:
        p = create(d, "t", echo.spec)
        addr = T.parse_addr(p["listen"])
        s = T.connect(addr)
        s.sendall(b"a" * 300)
        T.expect(T.recv_exactly(s, 300) == b"a" * 300, "echo")
        st, _ = d.api("POST", "/proxies/t/toxics",
                      {"type": "timeout", "stream": "upstream",
                       "attributes": {"timeout": 0}})
        T.expect(st == 200, "add timeout: %d" % st)
        s.sendall(b"z" * 500)
        wait_counts(d, "t", (800, 300, 300, 300))
        s.close()

        st, _ = d.api("DELETE", "/proxies/t/toxics/timeout_upstream")
        T.expect(st == 204, "remove timeout: %d" % st)
        st, _ = d.api("POST", "/proxies/t/toxics",
                      {"type": "latency", "stream": "downstream",
                       "attributes": {"latency": 1000}})
        T.expect(st == 200, "add latency: %d" % st)
        s = T.connect(addr, timeout=5)
        t0 = T.now()
        s.sendall(b"l" * 200)
        wait_counts(d, "t", (1000, 500, 500, 300), timeout=0.8)
        T.expect(T.now() - t0 < 1.0, "checked too late to see it held")
        T.expect(T.recv_exactly(s, 200) == b"l" * 200, "echo")
        wait_counts(d, "t", (1000, 500, 500, 500))
        s.close()


def test_udp_proxy_counts_datagrams():
    """A UDP proxy's flows count as well: limit_data drops the datagram
    that would pass its limit, which is received, not sent."""
    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind(("127.0.0.1", 0))
    echo.settimeout(0.05)
    stop = []

    def serve():
        while not stop:
            try:
                data, peer = echo.recvfrom(65536)
                echo.sendto(data, peer)
            except socket.timeout:
                continue
            except OSError:
                return

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    spec = "127.0.0.1:%d" % echo.getsockname()[1]
    try:
        with Tardyd() as d:
            p = create(d, "u", spec, protocol="udp")
            st, _ = d.api("POST", "/proxies/u/toxics",
                          {"type": "limit_data", "stream": "upstream",
                           "attributes": {"bytes": 10}})
            T.expect(st == 200, "add limit_data: %d" % st)
            c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            c.settimeout(2)
            c.connect(T.parse_addr(p["listen"])[1])
            for _ in range(3):
                c.send(b"12345")
            T.expect([c.recv(100), c.recv(100)] == [b"12345"] * 2,
                     "replies")
            wait_counts(d, "u", (15, 10, 10, 10))
            c.close()
    finally:
        stop.append(1)
        th.join(2)
        echo.close()


def test_labels_as_toxiproxy_reports_them():
    """The listener is the address bound (Toxiproxy reports localhost:N
    as 127.0.0.1:N), the upstream as given; scripts/test-e2e's grep
    matches. Several proxies share one group per family."""
    with Tardyd() as d, T.echo_server() as echo:
        upstream = "localhost:%d" % echo.addr[1][1]
        p = create(d, "shopify_http", upstream, listen="localhost:0")
        port = T.parse_addr(p["listen"])[1][1]
        create(d, "other", echo.spec)
        with T.connect(T.parse_addr(p["listen"])) as s:
            s.sendall(b"GET /test1\r\n")
            T.expect(T.recv_exactly(s, 12) == b"GET /test1\r\n", "echo")
        wait_counts(d, "shopify_http", (12, 12, 12, 12))
        text, fams = scrape(d)
        e2e = re.compile(
            r'^toxiproxy_proxy_sent_bytes_total\{direction="downstream",'
            r'listener="127\.0\.0\.1:%d",proxy="shopify_http",'
            r'upstream="%s"\} [0-9]+' % (port, re.escape(upstream)), re.M)
        T.expect(e2e.search(text), "e2e grep fails on:\n%s" % text)
        for fam in (RECEIVED, SENT):
            proxies = sorted({dict(l)["proxy"] for _, l, _ in
                              fams[fam]["samples"]})
            T.expect(proxies == ["other", "shopify_http"],
                     "%s: %r" % (fam, proxies))
        T.expect(counts(d, "other") == (0, 0, 0, 0), "other counted")


def test_labels_follow_the_proxy():
    """A new upstream relabels a proxy's series (its counts survive the
    change, as its other statistics do); a deleted proxy's series go."""
    with Tardyd() as d, T.echo_server() as echo, T.echo_server() as echo2:
        p = create(d, "m", echo.spec)
        with T.connect(T.parse_addr(p["listen"])) as s:
            s.sendall(b"x" * 64)
            T.recv_exactly(s, 64)
        wait_counts(d, "m", (64, 64, 64, 64))
        st, _ = d.api("POST", "/proxies/m", {"upstream": echo2.spec})
        T.expect(st == 200, "update: %d" % st)
        _, fams = scrape(d)
        ups = {dict(l)["upstream"] for _, l, _ in fams[SENT]["samples"]}
        T.expect(ups == {echo2.spec}, "upstream labels %r" % ups)
        T.expect(counts(d, "m") == (64, 64, 64, 64), "counts lost")
        st, _ = d.api("DELETE", "/proxies/m")
        T.expect(st == 204, "delete: %d" % st)
        text, fams = scrape(d)
        for fam in (RECEIVED, SENT):
            T.expect(fams[fam]["samples"] == [] and
                     "# TYPE %s counter\n" % fam in text,
                     "%s after delete: %r" % (fam, fams[fam]))


def test_parser_rejects_bad_text():
    """The checks above would catch what they claim to."""
    good = "# HELP a x\n# TYPE a counter\na{b=\"c\"} 1\n"
    parse(good)
    for bad in ("a 1\n",                                 # no TYPE
                good + "# TYPE a counter\n",             # family twice
                good + "# TYPE z gauge\nz 1\na{b=\"d\"} 2\n",  # split
                good + "a{b=\"c\"} 2\n",                 # series twice
                "# TYPE a counter\na{b=\"c} 1\n",        # bad labels
                "# TYPE a counter\na{b=\"c\",b=\"d\"} 1\n",
                "# TYPE a counter\na x\n",
                "# TYPE a counter\na 1"):
        try:
            parse(bad)
        except AssertionError:
            continue
        raise AssertionError("accepted %r" % bad)


T.main(globals())

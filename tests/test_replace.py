"""One rule for what a proxy keeps when it changes, whoever changes it.

PATCH, POST /populate and a reload of the configuration file all go
through one planner (src/control.c). A replacement (new upstream or
listen address) keeps the listener when the address stays, the toxics,
the counters and the connection numbering, and closes the connections;
an update in place (enabled, upstream_failure, connect_timeout) keeps
everything. Before, each path had its own rule: a reload's restart lost
the API's toxics and the counters, /populate's lost the toxics, and
/populate ignored "enabled" for a proxy it kept.
"""

import socket

import tardytest as T
from tardytest import Tardyd, expect


def accepted(d, name):
    st, text = d.api("GET", "/metrics")
    expect(st == 200, "metrics: %d" % st)
    key = 'tardy_connections_accepted_total{proxy="%s"}' % name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return int(float(line.split()[-1]))
    raise AssertionError("no %s in /metrics" % key)


def connection_ids(d, name):
    st, conns = d.api("GET", "/proxies/%s/connections" % name)
    expect(st == 200, "connections: %d" % st)
    return sorted(c["id"] for c in conns)


def check_replaced(d, before, one_conn, two):
    """The proxy "p" was moved from upstream one to two."""
    st, p = d.api("GET", "/proxies/p")
    expect(st == 200, "GET p: %d" % st)
    expect(p["upstream"] == two.spec, "upstream %r" % p["upstream"])
    expect(p["listen"] == before["listen"],
           "listener moved: %r -> %r" % (before["listen"], p["listen"]))
    expect([t["name"] for t in p["toxics"]] == ["api_toxic"],
           "toxics after the change: %r" % p["toxics"])
    T.expect_closed(one_conn)
    one_conn.close()
    with T.connect(T.parse_addr(p["listen"])) as s:
        T.roundtrip_tag(s, b"2:")
        # Numbering and counters go on: two connections came before.
        expect(connection_ids(d, "p") == [3],
               "connection ids %r" % connection_ids(d, "p"))
        expect(accepted(d, "p") == 3, "accepted %d" % accepted(d, "p"))


def setup(d, one):
    """Two connections through p (one kept open) and an API toxic."""
    st, p = d.api("GET", "/proxies/p")
    expect(st == 200, "GET p: %d" % st)
    st, _ = d.api("POST", "/proxies/p/toxics",
                  {"type": "noop", "name": "api_toxic"})
    expect(st == 200, "API toxic: %d" % st)
    with T.connect(T.parse_addr(p["listen"])) as s:
        T.roundtrip_tag(s, b"1:")
    s = T.connect(T.parse_addr(p["listen"]))
    T.roundtrip_tag(s, b"1:")
    return p, s


def test_patch_replaces_by_the_rule():
    with Tardyd() as d, T.tagged_server(b"1:") as one, \
            T.tagged_server(b"2:") as two:
        st, _ = d.api("POST", "/proxies", {"name": "p", "upstream": one.spec})
        expect(st == 201, "create: %d" % st)
        before, s = setup(d, one)
        st, body = d.api("PATCH", "/proxies/p", {"upstream": two.spec})
        expect(st == 200, "PATCH: %d %r" % (st, body))
        check_replaced(d, before, s, two)


def test_populate_replaces_by_the_rule():
    with Tardyd() as d, T.tagged_server(b"1:") as one, \
            T.tagged_server(b"2:") as two:
        st, _ = d.api("POST", "/proxies", {"name": "p", "upstream": one.spec})
        expect(st == 201, "create: %d" % st)
        before, s = setup(d, one)
        st, body = d.api("POST", "/populate", [
            {"name": "p", "listen": before["listen"], "upstream": two.spec}])
        expect(st == 201, "populate: %d %r" % (st, body))
        check_replaced(d, before, s, two)


def test_reload_replaces_by_the_rule():
    with T.tagged_server(b"1:") as one, T.tagged_server(b"2:") as two:
        conf = "[proxy p]\nlisten = 127.0.0.1:0\nupstream = %s\n"
        with Tardyd(conf % one.spec) as d:
            before, s = setup(d, one)
            d.write_config(conf % two.spec)
            d.reload()
            expect(d.ready["last_reload"] == "ok", "reload %r" % d.ready)
            check_replaced(d, before, s, two)


def test_update_in_place_keeps_connections():
    # connect_timeout changed in the file: applied without a restart.
    with T.tagged_server(b"1:") as one:
        conf = ("[proxy p]\nlisten = 127.0.0.1:0\nupstream = %s\n"
                "connect_timeout = %d\n")
        with Tardyd(conf % (one.spec, 1000)) as d:
            before, s = setup(d, one)
            d.write_config(conf % (one.spec, 2000))
            d.reload()
            expect(d.ready["last_reload"] == "ok", "reload %r" % d.ready)
            T.roundtrip_tag(s, b"1:")
            s.close()
            st, p = d.api("GET", "/proxies/p")
            expect(p["listen"] == before["listen"] and
                   [t["name"] for t in p["toxics"]] == ["api_toxic"],
                   "after the update: %r" % p)
            expect("p: updated" in d.log(), "no update in the log")


def test_populate_applies_enabled_to_a_kept_proxy():
    # Same addresses, "enabled": false: the proxy is disabled (its
    # connections closed), not left as it was; without "enabled" a
    # proxy's state stays as it is.
    with Tardyd() as d, T.tagged_server(b"1:") as one:
        st, p = d.api("POST", "/proxies", {"name": "p", "upstream": one.spec})
        expect(st == 201, "create: %d" % st)
        s = T.connect(T.parse_addr(p["listen"]))
        T.roundtrip_tag(s, b"1:")
        item = {"name": "p", "listen": p["listen"], "upstream": one.spec}
        st, body = d.api("POST", "/populate", [dict(item, enabled=False)])
        expect(st == 201 and body["proxies"][0]["enabled"] is False,
               "populate: %d %r" % (st, body))
        T.expect_closed(s)
        s.close()
        addr = T.parse_addr(p["listen"])
        c = socket.socket(addr[0], socket.SOCK_STREAM)
        try:
            c.settimeout(2)
            err = c.connect_ex(addr[1])
            expect(err != 0 or c.recv(1) == b"",
                   "a disabled proxy served a connection")
        except (ConnectionResetError, socket.timeout):
            pass
        finally:
            c.close()
        st, body = d.api("POST", "/populate", [item])
        expect(st == 201 and body["proxies"][0]["enabled"] is False,
               "populate without enabled changed it: %r" % body)


if __name__ == "__main__":
    T.main(globals())

"""Verdicts: what tardy says a client (or the upstream, or tardy) did about
each connection's fault, asserted against what the sockets did.

Each test makes one side close first, in a known way, and checks the
close event (GET /events), the connection's history entry (GET
/proxies/p/connections?closed=N) and /metrics. The real clients' timeouts
against fault_ms are in test_verdict_clients.py.
"""

import socket
import struct
import time

import tardytest as T
from tardytest import Lab, expect, expect_between, now

SLACK_MS = 50 * T.SLOW  # scheduling slack on a busy 2-core machine


def closes(lab):
    return [e for e in lab.events() if e["type"] == "close"]


def wait_acted(lab):
    """Until the toxic is on connection 1. fault_ms counts from then, and
    tardy may take a connection over after its client's connect()
    returned and it sent: a client timer started before would measure
    more than tardy's."""
    lab.wait_event("toxic_acted", 1)


def wait_closes(lab, n, timeout=3.0):
    deadline = now() + timeout * T.SLOW
    while now() < deadline:
        c = closes(lab)
        if len(c) >= n:
            return c
        time.sleep(0.02)
    raise AssertionError("%d close events, expected %d: %r" %
                         (len(closes(lab)), n, closes(lab)))


def history(lab, n=10):
    st, c = lab.d.api("GET", "/proxies/p/connections?closed=%d" % n)
    expect(st == 200, "connections: %d %r" % (st, c))
    return [x for x in c if x["state"] == "closed"]


def wait_history(lab, n, timeout=3.0):
    """The history once it holds n entries: a connection enters it when
    it is freed, after both sides closed, a moment after its close
    event (the first close)."""
    deadline = now() + timeout * T.SLOW
    while now() < deadline:
        h = history(lab, 1000)
        if len(h) >= n:
            return h
        time.sleep(0.02)
    raise AssertionError("history of %d, expected %d: %r" %
                         (len(history(lab, 1000)), n, history(lab, 1000)))


def rst_close(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def fill(s, limit=64 << 20):
    """Send until the socket would block; the bytes sent."""
    s.setblocking(False)
    n = 0
    try:
        while n < limit:
            n += s.send(b"x" * 65536)
    except BlockingIOError:
        pass
    return n


def test_client_fin_without_fault():
    with T.echo_server() as up, Lab(up.spec) as lab:
        s = lab.connect()
        s.sendall(b"ping")
        T.recv_exactly(s, 4)
        time.sleep(0.1)
        s.close()
        (c,) = wait_closes(lab, 1)
        expect(c["closed_by"] == "client" and c["close"] == "fin" and
               c["fault_ms"] is None and c["fault"] is None and
               c["bytes_up"] == 4 and c["bytes_down"] == 4, "%r" % c)
        # The client last got its echo about 100 ms before closing.
        expect_between(c["idle_ms"], 90, 100 + SLACK_MS, "idle_ms")
        expect(c["unread_bytes"] == 0, "unread %r" % c)


def test_upstream_closes_first():
    def handler(c):
        c.recv(10)
        c.close()
    with T.Server(handler) as up, Lab(up.spec) as lab:
        s = lab.connect()
        s.sendall(b"x")
        expect(s.recv(10) == b"", "EOF from the upstream")
        s.close()
        c = wait_closes(lab, 1)[0]
        expect(c["closed_by"] == "upstream" and c["close"] == "fin",
               "%r" % c)


def test_client_gives_up_under_blackhole():
    # The client's receive timeout fires; its FIN is its close although
    # blackhole keeps tardy's side open (no close event at all before).
    with T.echo_server() as up, Lab(up.spec) as lab:
        lab.add("blackhole", "downstream", name="bh")
        s = lab.connect()
        s.sendall(b"request")
        s.settimeout(0.3)
        wait_acted(lab)
        t0 = now()
        try:
            s.recv(10)
            raise AssertionError("blackhole let bytes through")
        except socket.timeout:
            pass
        waited = (now() - t0) * 1000
        s.close()
        c = wait_closes(lab, 1)[0]
        expect(c["closed_by"] == "client" and c["close"] == "fin" and
               c["fault"] == {"name": "bh", "type": "blackhole"}, "%r" % c)
        # The toxic acted before the client's timer started.
        expect_between(c["fault_ms"], waited, waited + SLACK_MS, "fault_ms")
        # blackhole keeps tardy's side open after the client's close (the
        # upstream's EOF is swallowed): not in the history yet, listed
        # open with its verdict.
        st, conns = lab.d.api("GET", "/proxies/p/connections?closed=10")
        expect([(x["state"], x.get("closed_by")) for x in conns] ==
               [("open", "client")], "connections %r" % conns)


def test_upstream_close_a_toxic_withholds_is_not_the_verdict():
    # An upstream that answers and closes (HTTP/1.0): its FIN swallowed
    # (blackhole, timeout) or held (latency) by a downstream toxic never
    # reached the client, whose own timeout is the verdict. It used to
    # be taken as the upstream's close the moment tardy read it.
    def answer_and_close(c):
        c.recv(100)
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
        c.close()
    for toxic, attrs in (("blackhole", {}), ("latency", {"latency": 2000}),
                         ("timeout", {"timeout": 0})):
        with T.Server(answer_and_close) as up, Lab(up.spec) as lab:
            lab.add(toxic, "downstream", **attrs)
            s = lab.connect()
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            s.settimeout(0.3)
            wait_acted(lab)
            t0 = now()
            try:
                s.recv(100)
                raise AssertionError("%s let the reply through" % toxic)
            except socket.timeout:
                pass
            waited = (now() - t0) * 1000
            s.close()
            c = wait_closes(lab, 1)[0]
            expect(c["closed_by"] == "client" and c["close"] == "fin",
                   "%s: %r" % (toxic, c))
            expect_between(c["fault_ms"], waited, waited + SLACK_MS,
                           "%s: fault_ms" % toxic)


def test_client_resets_a_stalled_connection():
    # Under stall tardy does not read the client: its RST is still seen
    # at once, with what it had pushed that tardy never read.
    with T.echo_server() as up, Lab(up.spec) as lab:
        lab.add("stall", "upstream", name="st")
        s = lab.connect()
        pushed = fill(s)
        time.sleep(0.2)
        t_rst = now()
        rst_close(s)
        c = wait_closes(lab, 1)[0]
        seen = (now() - t_rst) * 1000
        expect(c["closed_by"] == "client" and c["close"] == "rst", "%r" % c)
        expect(0 < c["unread_bytes"] <= pushed, "unread %r of %d pushed" %
               (c["unread_bytes"], pushed))
        expect(c["fault"]["type"] == "stall", "%r" % c)
        expect(seen < 1000, "seen %.0f ms after the reset" % seen)


def test_tardy_closes_fin_and_rst():
    with T.echo_server() as up, Lab(up.spec) as lab:
        lab.add("timeout", "downstream", name="to", timeout=100)
        s = lab.connect()
        s.settimeout(2)
        expect(s.recv(10) == b"", "timeout closes")
        s.close()
        lab.remove("to")
        # reset_peer resets timeout ms after the first data it sees.
        lab.add("reset_peer", "upstream", name="rp", timeout=100)
        s = lab.connect()
        s.sendall(b"x")
        s.settimeout(2)
        try:
            s.recv(10)
            raise AssertionError("reset_peer did not reset")
        except ConnectionResetError:
            pass
        s.close()
        a, b = wait_closes(lab, 2)
        expect(a["closed_by"] == "tardy" and a["close"] == "fin" and
               a["fault"]["name"] == "to", "timeout: %r" % a)
        expect_between(a["fault_ms"], 100, 100 + SLACK_MS, "timeout fault")
        expect(b["closed_by"] == "tardy" and b["close"] == "rst" and
               b["fault"]["name"] == "rp", "reset_peer: %r" % b)
        expect_between(b["fault_ms"], 100, 100 + SLACK_MS, "reset fault")


def test_disable_is_tardys_close():
    with T.echo_server() as up, Lab(up.spec) as lab:
        s = lab.connect()
        s.sendall(b"x")
        T.recv_exactly(s, 1)
        st, _ = lab.d.api("POST", "/proxies/p", {"enabled": False})
        expect(st == 200, "disable: %d" % st)
        c = wait_closes(lab, 1)[0]
        expect(c["closed_by"] == "tardy" and c["reason"] == "proxy disabled",
               "%r" % c)
        s.close()


def test_history_and_retry_gaps():
    # A client that waits 50, 100, 150 ms before trying again: each new
    # connection's retry_gap_ms is that wait.
    with T.echo_server() as up, Lab(up.spec) as lab:
        for i in range(4):
            if i > 0:
                time.sleep(0.05 * i)
            s = lab.connect()
            s.sendall(b"x")
            T.recv_exactly(s, 1)
            s.close()
            wait_closes(lab, i + 1)
        h = wait_history(lab, 4)
        expect([x["id"] for x in h] == [1, 2, 3, 4], "ids %r" % h)
        expect(h[0]["retry_gap_ms"] is None, "first: %r" % h[0])
        for x, slept in zip(h[1:], (50, 100, 150)):
            expect_between(x["retry_gap_ms"], slept, slept + SLACK_MS,
                           "retry gap of %d" % x["id"])
        expect([x["accept_ms"] for x in h] == sorted(x["accept_ms"]
                                                     for x in h) and
               h[0]["accept_ms"] == 0, "accept_ms %r" % h)
        expect([x["id"] for x in history(lab, 2)] == [3, 4],
               "?closed=2 is the last two")


def test_history_is_bounded():
    with T.echo_server() as up, Lab(up.spec) as lab:
        for _ in range(300):
            with lab.connect() as s:
                s.sendall(b"x")
                T.recv_exactly(s, 1)
        deadline = now() + 5 * T.SLOW
        while now() < deadline and 300 not in [x["id"] for x in
                                               history(lab, 1000)]:
            time.sleep(0.05)
        h = wait_history(lab, 256)
        # In the order they were freed, which need not be the order they
        # were accepted: the last 256 of 300, give or take a few.
        ids = [x["id"] for x in h]
        expect(len(h) == 256 and len(set(ids)) == 256 and 300 in ids and
               min(ids) >= 40, "%d entries, ids %r" % (len(h), ids))
        st, body = lab.d.api("GET", "/proxies/p/connections?closed=x")
        expect(st == 400 and "closed" in body["error"], "%r" % body)


def test_same_seed_same_verdicts():
    # Half the connections get the blackhole (toxicity 0.5, seeded); the
    # same client against the same seed gets the same closed_by/close
    # sequence: the rolls are the seed's, the verdict the client's.
    def run():
        with T.echo_server() as up, Lab(up.spec, args=("--seed", "7")) as lab:
            lab.add("blackhole", "downstream", name="bh", toxicity=0.5)
            for _ in range(8):
                s = lab.connect()
                s.sendall(b"x")
                s.settimeout(0.1)
                try:
                    T.recv_exactly(s, 1, timeout=0.1)
                except (socket.timeout, AssertionError):
                    pass
                s.close()
            c = wait_closes(lab, 8)
            return [(e["connection"], e["closed_by"], e["close"],
                     e["fault"] is not None) for e in c]
    a, b = run(), run()
    expect(a == b, "%r != %r" % (a, b))
    expect(any(x[3] for x in a) and not all(x[3] for x in a),
           "the seed gave all or none the toxic: %r" % a)


def test_client_fault_histogram():
    with T.echo_server() as up, Lab(up.spec) as lab:
        lab.add("blackhole", "downstream")
        for _ in range(3):
            s = lab.connect()
            s.sendall(b"x")
            time.sleep(0.03)
            s.close()
        wait_closes(lab, 3)
        st, text = lab.d.api("GET", "/metrics")
        line = [l for l in text.splitlines()
                if l.startswith('tardy_client_fault_seconds_count{proxy="p"}')]
        expect(line and line[0].split()[-1] == "3", "%r" % line)
        le = [l for l in text.splitlines() if l.startswith(
            'tardy_client_fault_seconds_bucket{proxy="p",le="0.025"}')]
        expect(le and le[0].split()[-1] == "0", "30 ms each: %r" % le)


def test_udp_flow_ends_by_flow_timeout():
    with T.UdpEcho() as up, T.Tardyd(
            "[proxy u]\nprotocol = udp\nlisten = 127.0.0.1:0\n"
            "upstream = %s\nflow_timeout = 200\n" % up.spec) as d:
        fam, addr = d.proxy_addr("u")
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.settimeout(1)
        s.sendto(b"a", addr)
        expect(s.recv(10) == b"a", "echo")
        deadline = now() + 3 * T.SLOW
        c = []
        while now() < deadline and not c:
            time.sleep(0.05)
            st, ev = d.api("GET", "/events")
            c = [e for e in ev if e["type"] == "close"]
        s.close()
        expect(c and c[0]["closed_by"] == "flow_timeout" and
               c[0]["close"] is None and c[0]["unread_bytes"] is None,
               "%r" % c)
        # Idle since the echo went back, a moment after the flow's last
        # datagram started its flow_timeout.
        expect_between(c[0]["idle_ms"], 195, 200 + SLACK_MS, "idle_ms")


if __name__ == "__main__":
    T.main(globals())

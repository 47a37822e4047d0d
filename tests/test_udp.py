#!/usr/bin/env python3
"""UDP proxies (issue 9).

Each test starts tardyd with a UDP proxy "u" in front of a Python UDP
echo server (a thread) or a real DNS server (dnsmasq, answering from a
hosts file it is given, never forwarding), and asserts what a real
datagram client sees: its replies, their boundaries, when they come and
which are missing. Everything stays on loopback.
"""

import os
import select
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

import tardytest
from tardytest import (Tardyd, expect, expect_between, have_ipv6, now,
                       skip)

MARGIN = 0.060          # s: scheduling slack allowed on top of a delay


UdpEcho = tardytest.UdpEcho


def udp_conf(upstream, listen="127.0.0.1:0", extra="", seed=None):
    head = "[tardy]\nseed = %d\n" % seed if seed is not None else ""
    return ("%s[proxy u]\nprotocol = udp\nlisten = %s\nupstream = %s\n%s" %
            (head, listen, upstream, extra))


def client(d, name="u", timeout=1.0):
    fam, addr = d.proxy_addr(name)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    s.connect(addr)
    return s


def add_toxic(d, type_, stream="downstream", name=None, **attrs):
    body = {"type": type_, "stream": stream, "attributes": attrs}
    if name is not None:
        body["name"] = name
    st, r = d.api("POST", "/proxies/u/toxics", body)
    expect(st == 200, "add %s: %s %r" % (type_, st, r))
    return r


def recv_all(s, quiet=0.3):
    """Every datagram that arrives until none has for quiet seconds."""
    out = []
    s.settimeout(quiet)
    while True:
        try:
            out.append(s.recv(65536))
        except socket.timeout:
            return out


# --- the basics -----------------------------------------------------------

def test_echo_and_protocol_field():
    with UdpEcho() as up, Tardyd(udp_conf(up.spec)) as d:
        s = client(d)
        s.send(b"hello")
        expect(s.recv(65536) == b"hello", "echo")
        s.send(b"")             # an empty datagram is a datagram too
        expect(s.recv(65536) == b"", "empty datagram")
        st, p = d.api("GET", "/proxies/u")
        expect(st == 200 and p["protocol"] == "udp", "proxy: %r" % (p,))
        st, c = d.api("GET", "/proxies/u/connections")
        expect(st == 200 and len(c) == 1, "one flow: %r" % (c,))
        expect(c[0]["protocol"] == "udp" and c[0]["datagrams_up"] == 2 and
               c[0]["datagrams_down"] == 2 and c[0]["bytes_up"] == 5,
               "flow: %r" % (c,))
        s.close()


def test_many_flows_each_get_their_replies():
    n = 50
    with UdpEcho() as up, Tardyd(udp_conf(up.spec)) as d:
        socks = [client(d) for _ in range(n)]
        for i, s in enumerate(socks):
            s.send(b"client %d" % i)
        for i, s in enumerate(socks):
            expect(s.recv(65536) == b"client %d" % i, "reply %d" % i)
        st, c = d.api("GET", "/proxies/u/connections")
        expect(len(c) == n, "%d flows, got %d" % (n, len(c)))
        expect(sorted(f["id"] for f in c) == list(range(1, n + 1)),
               "flow numbers")
        with urllib.request.urlopen(d.api_url + "/metrics") as r:
            m = r.read().decode()
        expect('tardy_connections_accepted_total{proxy="u"} %d' % n in m,
               "metrics accepted: %s" % m)
        for s in socks:
            s.close()


def test_big_datagram_intact():
    payload = bytes(range(256)) * 234 + b"x" * 96     # 60,000 bytes
    with UdpEcho() as up, Tardyd(udp_conf(up.spec)) as d:
        s = client(d)
        s.send(payload)
        got = s.recv(65536)
        expect(got == payload, "60,000 bytes back whole (%d)" % len(got))
        add_toxic(d, "latency", latency=10)
        s.send(payload)
        expect(s.recv(65536) == payload, "through a toxic too")
        s.close()


def test_ipv6():
    if not have_ipv6():
        skip("no ::1")
    with UdpEcho(socket.AF_INET6, "::1") as up, \
            Tardyd(udp_conf(up.spec, listen="[::1]:0")) as d:
        s = client(d)
        s.send(b"six")
        expect(s.recv(65536) == b"six", "echo over IPv6")
        s.close()


def test_flow_expiry():
    with UdpEcho() as up, \
            Tardyd(udp_conf(up.spec, extra="flow_timeout = 300\n")) as d:
        s = client(d)
        s.send(b"a")
        expect(s.recv(65536) == b"a", "echo")
        st, c = d.api("GET", "/proxies/u/connections")
        expect(len(c) == 1, "one flow: %r" % (c,))
        time.sleep(0.2)
        s.send(b"b")            # traffic keeps it alive
        expect(s.recv(65536) == b"b", "echo")
        time.sleep(0.2)
        st, c = d.api("GET", "/proxies/u/connections")
        expect(len(c) == 1, "still there after use: %r" % (c,))
        deadline = now() + 2
        while now() < deadline and c:
            time.sleep(0.05)
            st, c = d.api("GET", "/proxies/u/connections")
        expect(c == [], "flow expired: %r" % (c,))
        s.send(b"c")
        expect(s.recv(65536) == b"c", "a new flow")
        st, c = d.api("GET", "/proxies/u/connections")
        expect(len(c) == 1 and c[0]["id"] == 2, "flow 2: %r" % (c,))
        s.close()


def test_max_flows_drops_new_clients():
    with UdpEcho() as up, \
            Tardyd(udp_conf(up.spec, extra="max_flows = 2\n")) as d:
        socks = [client(d, timeout=0.3) for _ in range(3)]
        for s in socks[:2]:
            s.send(b"in")
            expect(s.recv(100) == b"in", "within the cap")
        socks[2].send(b"out")
        try:
            socks[2].recv(100)
            expect(False, "third client answered past max_flows")
        except socket.timeout:
            pass
        expect("max_flows" in d.log(), "logged: %s" % d.log())
        for s in socks:
            s.close()


def test_disabled_drops_keeps_port():
    with UdpEcho() as up, Tardyd(udp_conf(up.spec)) as d:
        s = client(d, timeout=0.3)
        st, _ = d.api("POST", "/proxies/u", {"enabled": False})
        expect(st == 200, "disable")
        s.send(b"x")
        try:
            s.recv(100)
            expect(False, "disabled proxy answered")
        except socket.timeout:
            pass
        st, _ = d.api("POST", "/proxies/u", {"enabled": True})
        s.send(b"y")
        expect(s.recv(100) == b"y", "enabled again")
        s.close()


# --- toxics on datagrams --------------------------------------------------

def test_blackhole_recv_times_out():
    with UdpEcho() as up, Tardyd(udp_conf(up.spec)) as d:
        add_toxic(d, "blackhole")
        s = client(d, timeout=0.3)
        s.send(b"gone")
        t0 = now()
        try:
            s.recv(100)
            expect(False, "a reply came through a blackhole")
        except socket.timeout:
            expect_between(now() - t0, 0.3, 0.3 + MARGIN, "timeout")
        expect(up.received == 1, "the request did reach the server")
        s.close()


def test_latency():
    with UdpEcho() as up, Tardyd(udp_conf(up.spec)) as d:
        add_toxic(d, "latency", latency=300)
        s = client(d)
        for i in range(3):
            t0 = now()
            s.send(b"ping %d" % i)
            expect(s.recv(100) == b"ping %d" % i, "reply")
            expect_between(now() - t0, 0.300, 0.300 + MARGIN, "delay")
        s.close()


def loss_pattern(seed, n=40):
    with UdpEcho() as up, Tardyd(udp_conf(up.spec, seed=seed)) as d:
        add_toxic(d, "loss", stream="upstream", probability_ppm=500000)
        s = client(d)
        for i in range(n):
            s.send(b"%d" % i)
        got = sorted(int(x) for x in recv_all(s))
        s.close()
    return got


def test_loss_is_replayed_by_seed():
    a = loss_pattern(7)
    b = loss_pattern(7)
    c = loss_pattern(8)
    expect(a == b, "same seed, same losses: %r vs %r" % (a, b))
    expect(a != c, "another seed, other losses: %r" % (a,))
    expect(8 <= len(a) <= 32, "about half lost: %d of 40 kept" % len(a))


def test_duplicate():
    with UdpEcho() as up, Tardyd(udp_conf(up.spec)) as d:
        add_toxic(d, "duplicate", stream="upstream",
                  probability_ppm=1000000)
        s = client(d)
        for i in range(5):
            s.send(b"d%d" % i)
        got = recv_all(s)
        expect(got == [b"d%d" % (i // 2) for i in range(10)],
               "each twice, in order: %r" % (got,))
        s.close()


def exchange(s, n):
    """Send n numbered datagrams a little apart and read the replies as
    they come, so that no socket buffer on the way overflows and every
    loss is the toxic's: the replies, until none has come for a while."""
    got = []
    for i in range(n):
        s.send(b"%d" % i)
        time.sleep(0.0002)
        while select.select([s], [], [], 0)[0]:
            got.append(s.recv(65536))
    return got + recv_all(s)


def test_probability_1_and_0():
    # probability is a number from 0 to 1, as toxicity is: 1 acts on
    # every datagram, 0 on none. An update takes effect on the same flow.
    with UdpEcho() as up, Tardyd(udp_conf(up.spec)) as d:
        t = add_toxic(d, "loss", stream="upstream", name="l", probability=1)
        expect(t["attributes"] == {"probability": 1.0},
               "shown as probability: %r" % (t,))
        s = client(d)
        got = exchange(s, 20)
        expect(got == [] and up.received == 0,
               "probability 1 drops every datagram: %d came back, %d "
               "reached the server" % (len(got), up.received))
        st, t = d.api("POST", "/proxies/u/toxics/l",
                      {"attributes": {"probability": 0}})
        expect(st == 200 and t["attributes"] == {"probability": 0.0},
               "update: %s %r" % (st, t))
        got = exchange(s, 20)
        expect(got == [b"%d" % i for i in range(20)],
               "probability 0 drops none: %r" % (got,))
        s.close()
    # The config file takes it the same way.
    with UdpEcho() as up, Tardyd(udp_conf(up.spec, extra="[toxic u d]\n"
                                          "type = duplicate\n"
                                          "stream = upstream\n"
                                          "probability = 1\n")) as d:
        s = client(d)
        got = exchange(s, 10)
        expect(got == [b"%d" % (i // 2) for i in range(20)],
               "probability 1 duplicates every datagram: %r" % (got,))
        d.api("POST", "/proxies/u/toxics/d",
              {"attributes": {"probability": 0.0}})
        got = exchange(s, 10)
        expect(got == [b"%d" % i for i in range(10)],
               "probability 0 duplicates none: %r" % (got,))
        s.close()


def seeded_run(type_, seed, n=200, **attrs):
    """The datagrams that came back from n sent through an upstream toxic,
    with the daemon's seed fixed: a sorted list of their numbers."""
    with UdpEcho() as up, Tardyd(udp_conf(up.spec, seed=seed)) as d:
        add_toxic(d, type_, stream="upstream", **attrs)
        s = client(d)
        got = sorted(int(x) for x in exchange(s, n))
        s.close()
    return got


def test_probability_half_is_seeded():
    # 200 draws at 0.5: the count is binomial (mean 100, sd 7.1), so 65
    # to 135 is five standard deviations; a fixed seed gives one count,
    # the same every run, and probability_ppm 500000 is the same setting,
    # drawing the same losses.
    a = seeded_run("loss", 21, probability=0.5)
    b = seeded_run("loss", 21, probability=0.5)
    c = seeded_run("loss", 21, probability_ppm=500000)
    e = seeded_run("loss", 22, probability=0.5)
    print("# loss 0.5, seed 21: %d of 200 kept; seed 22: %d" %
          (len(a), len(e)))
    expect(65 <= len(a) <= 135, "%d of 200 kept at 0.5" % len(a))
    expect(a == b, "same seed, other losses: %r vs %r" % (a, b))
    expect(a == c, "probability_ppm 500000 lost others: %r vs %r" % (a, c))
    expect(a != e, "another seed, the same losses: %r" % (a,))
    dup = seeded_run("duplicate", 21, probability=0.5)
    again = seeded_run("duplicate", 21, probability=0.5)
    extra = len(dup) - 200
    print("# duplicate 0.5, seed 21: %d of 200 sent twice" % extra)
    expect(sorted(set(dup)) == list(range(200)), "every datagram came")
    expect(65 <= extra <= 135, "%d of 200 duplicated at 0.5" % extra)
    expect(dup == again, "same seed, other duplicates")


def test_probability_errors():
    with UdpEcho() as up, Tardyd(udp_conf(up.spec)) as d:
        for ty in ("loss", "duplicate"):
            for v in (-0.1, 1.5, 2, -1, "0.5", True, [0.5]):
                st, r = d.api("POST", "/proxies/u/toxics",
                              {"type": ty, "attributes": {"probability": v}})
                expect(st == 400 and "probability" in r["error"],
                       "%s probability %r: %s %r" % (ty, v, st, r))
            for v in (-1, 1000001, 0.5):
                st, r = d.api("POST", "/proxies/u/toxics",
                              {"type": ty,
                               "attributes": {"probability_ppm": v}})
                expect(st == 400 and "probability_ppm" in r["error"],
                       "%s probability_ppm %r: %s %r" % (ty, v, st, r))
            st, r = d.api("POST", "/proxies/u/toxics",
                          {"type": ty, "attributes": {
                              "probability": 0.5, "probability_ppm": 500000}})
            expect(st == 400 and "probability " in r["error"] and
                   "probability_ppm" in r["error"],
                   "%s with both: %s %r" % (ty, st, r))
            st, r = d.api("POST", "/proxies/u/toxics", {"type": ty})
            expect(st == 400 and "probability" in r["error"],
                   "%s without: %s %r" % (ty, st, r))
            # The alias is shown as the one setting, and a bad update
            # leaves it as it was.
            st, t = d.api("POST", "/proxies/u/toxics",
                          {"type": ty, "name": ty,
                           "attributes": {"probability_ppm": 250000}})
            expect(st == 200 and t["attributes"] == {"probability": 0.25},
                   "%s from ppm: %s %r" % (ty, st, t))
            st, r = d.api("POST", "/proxies/u/toxics/" + ty,
                          {"attributes": {"probability": 1.01}})
            expect(st == 400 and "probability" in r["error"],
                   "%s update 1.01: %s %r" % (ty, st, r))
            st, t = d.api("GET", "/proxies/u/toxics/" + ty)
            expect(t["attributes"] == {"probability": 0.25},
                   "%s after a bad update: %r" % (ty, t))
        st, r = d.api("GET", "/proxies/u/toxics")
        expect(sorted(t["name"] for t in r) == ["duplicate", "loss"],
               "refused toxics left behind: %r" % (r,))


def test_limit_data_drops_whole_datagrams():
    with UdpEcho() as up, Tardyd(udp_conf(up.spec)) as d:
        add_toxic(d, "limit_data", stream="upstream", bytes=10)
        s = client(d)
        for m in (b"aaaa", b"bbbb", b"cccc", b"dd"):
            s.send(m)
        got = recv_all(s)
        expect(got == [b"aaaa", b"bbbb"], "whole datagrams: %r" % (got,))
        st, c = d.api("GET", "/proxies/u/connections")
        expect(len(c) == 1, "the flow stays: %r" % (c,))
        s.close()


def test_bandwidth_paces_whole_datagrams():
    with UdpEcho() as up, Tardyd(udp_conf(up.spec)) as d:
        add_toxic(d, "bandwidth", rate=10)      # 10 KB/s
        s = client(d)
        t0 = now()
        for i in range(5):
            s.send(bytes([65 + i]) * 1000)
        got, at = [], []
        for _ in range(5):
            got.append(s.recv(65536))
            at.append(now() - t0)
        expect(got == [bytes([65 + i]) * 1000 for i in range(5)],
               "never merged or split: %r" % ([len(g) for g in got],))
        # Never early, as on TCP: each leaves once it and the ones before
        # it have taken their size at the rate, 100 ms each, the first
        # too.
        for i, t in enumerate(at):
            expect(t >= 0.100 * (i + 1) - 0.0005,
                   "datagram %d after %.4f s: early" % (i + 1, t))
        expect_between(at[-1], 0.500, 0.500 + MARGIN * 2, "paced")
        s.close()


def test_after_bytes_never_splits():
    with UdpEcho() as up, Tardyd(udp_conf(up.spec)) as d:
        add_toxic(d, "blackhole", stream="upstream", after_bytes=6)
        s = client(d)
        for m in (b"aaaa", b"bbbb", b"cccc"):
            s.send(m)
        got = recv_all(s)
        expect(got == [b"aaaa", b"bbbb"], "the crossing one whole: %r" %
               (got,))
        s.close()


def test_bad_toxics_on_udp():
    with UdpEcho() as up, Tardyd(udp_conf(up.spec) +
                                 "[proxy t]\nlisten = 127.0.0.1:0\n"
                                 "upstream = 127.0.0.1:9\n") as d:
        for ty in ("slow_close", "drop_syn", "stall", "slicer",
                   "reset_peer", "timeout", "refuse"):
            st, r = d.api("POST", "/proxies/u/toxics", {"type": ty})
            expect(st == 400 and "udp" in r["error"],
                   "%s: %s %r" % (ty, st, r))
        st, r = d.api("POST", "/proxies/u/toxics", {"type": "refuse"})
        expect("ICMP" in r["error"], "refuse says why: %r" % (r,))
        for ty in ("loss", "duplicate"):
            st, r = d.api("POST", "/proxies/t/toxics",
                          {"type": ty, "attributes": {"probability_ppm": 1}})
            expect(st == 400 and "udp proxies only" in r["error"],
                   "%s on tcp: %s %r" % (ty, st, r))
        st, r = d.api("GET", "/proxies/t")
        expect(r["protocol"] == "tcp", "tcp proxy: %r" % (r,))


def test_config_check_rejects():
    tmp = tempfile.mkdtemp(prefix="tardytest.")
    try:
        path = os.path.join(tmp, "tardy.conf")
        cases = [
            (udp_conf("127.0.0.1:9") + "[toxic u s]\ntype = stall\n",
             "cannot act on a udp proxy"),
            (udp_conf("127.0.0.1:9").replace("udp", "sctp"),
             "tcp or udp"),
            (udp_conf("unix:/tmp/nope.sock"), "unix datagram"),
            ("[proxy t]\nlisten = 127.0.0.1:0\nupstream = 127.0.0.1:9\n"
             "[toxic t l]\ntype = loss\nprobability_ppm = 5\n",
             "udp proxies only"),
            (udp_conf("127.0.0.1:9") +
             "[toxic u l]\ntype = loss\nprobability = 1.5\n",
             ":7: toxic \"l\": attribute probability must be between 0 "
             "and 1"),
            (udp_conf("127.0.0.1:9") +
             "[toxic u l]\ntype = duplicate\nprobability = 0.5\n"
             "probability_ppm = 500000\n",
             "probability and probability_ppm"),
        ]
        for text, want in cases:
            with open(path, "w") as f:
                f.write(text)
            r = subprocess.run([tardytest.TARDYD, "-t", "-c", path],
                               capture_output=True, timeout=10)
            err = r.stderr.decode()
            expect(r.returncode != 0 and want in err,
                   "%r: rc %d %s" % (want, r.returncode, err))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_api_create_populate_delete():
    with UdpEcho() as up, Tardyd() as d:
        st, p = d.api("POST", "/proxies", {"name": "v", "upstream": up.spec,
                                           "protocol": "udp"})
        expect(st == 201 and p["protocol"] == "udp", "create: %r" % (p,))
        st, r = d.api("POST", "/proxies", {"name": "w", "upstream": up.spec,
                                           "protocol": "quic"})
        expect(st == 400 and "protocol" in r["error"], "bad: %r" % (r,))
        st, r = d.api("POST", "/proxies", {"name": "w", "protocol": "udp",
                                           "upstream": "unix:/tmp/x"})
        expect(st == 400 and "unix" in r["error"], "unix: %r" % (r,))
        fam, addr = tardytest.parse_addr(p["listen"])
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.settimeout(1)
        s.connect(addr)
        s.send(b"api")
        expect(s.recv(100) == b"api", "echo via API proxy")
        # Same name, listen, upstream and protocol: kept as it is.
        st, r = d.api("POST", "/populate", [
            {"name": "v", "listen": p["listen"], "upstream": up.spec,
             "protocol": "udp"},
            {"name": "x", "upstream": up.spec}])
        expect(st == 201 and [q["protocol"] for q in r["proxies"]] ==
               ["udp", "tcp"], "populate: %r" % (r,))
        s.send(b"kept")
        expect(s.recv(100) == b"kept", "kept by populate")
        st, _ = d.api("DELETE", "/proxies/v")
        expect(st == 204, "delete")
        s.send(b"after")
        s.settimeout(0.3)
        try:
            s.recv(100)
            expect(False, "deleted proxy answered")
        except (socket.timeout, ConnectionRefusedError):
            pass
        s.close()


def test_reload_changes_flow_timeout():
    with UdpEcho() as up, Tardyd(udp_conf(up.spec)) as d:
        s = client(d)
        s.send(b"1")
        expect(s.recv(100) == b"1", "echo")
        d.write_config(udp_conf(up.spec, extra="flow_timeout = 200\n"))
        d.reload()
        s.send(b"2")
        expect(s.recv(100) == b"2", "echo after reload")
        time.sleep(0.5)
        st, c = d.api("GET", "/proxies/u/connections")
        expect(c == [], "new flow_timeout applies: %r" % (c,))
        s.close()


def test_tardyctl_create_udp():
    with UdpEcho() as up, Tardyd() as d:
        r = subprocess.run([tardytest.TARDYCTL, "-a", d.ready["api"], "-j",
                            "create", "c", "-u", up.spec, "--protocol",
                            "udp"], capture_output=True, timeout=10)
        expect(r.returncode == 0, "tardyctl: %r" % (r,))
        st, p = d.api("GET", "/proxies/c")
        expect(p["protocol"] == "udp", "created udp: %r" % (p,))


# --- real DNS: dnsmasq and dig ---------------------------------------------

NAMES = ["n%d.test" % i for i in range(8)]


def Dnsmasq():
    """dnsmasq on a loopback port, answering NAMES from a hosts file."""
    return tardytest.Dnsmasq({n: "10.9.0.%d" % (i + 1)
                              for i, n in enumerate(NAMES)})


def dig(port, name):
    """(first answer or None, seconds, dig's output)."""
    t0 = now()
    r = subprocess.run(["dig", "+time=1", "+tries=1", "+short", "@127.0.0.1",
                        "-p", str(port), name], capture_output=True,
                       timeout=10)
    out = r.stdout.decode().strip()
    ans = out if r.returncode == 0 and out and "timed out" not in out \
        else None
    return ans, now() - t0, out


def test_dns_clean():
    with Dnsmasq() as dns, Tardyd(udp_conf(dns.spec)) as d:
        port = d.proxy_addr("u")[1][1]
        for i, n in enumerate(NAMES[:3]):
            ans, took, out = dig(port, n)
            expect(ans == "10.9.0.%d" % (i + 1), "%s: %r" % (n, out))


def test_dns_blackhole_times_out():
    with Dnsmasq() as dns, Tardyd(udp_conf(dns.spec)) as d:
        add_toxic(d, "blackhole")
        port = d.proxy_addr("u")[1][1]
        ans, took, out = dig(port, NAMES[0])
        expect(ans is None and "timed out" in out, "dig: %r" % (out,))
        expect_between(took, 1.0, 1.6, "dig's timeout")


def dns_loss_run(dns, seed):
    with Tardyd(udp_conf(dns.spec, seed=seed)) as d:
        add_toxic(d, "loss", stream="upstream", probability_ppm=500000)
        port = d.proxy_addr("u")[1][1]
        return [dig(port, n)[0] is not None for n in NAMES]


def test_dns_loss_replayed_by_seed():
    with Dnsmasq() as dns:
        a = dns_loss_run(dns, 11)
        b = dns_loss_run(dns, 11)
    expect(a == b, "same queries fail: %r vs %r" % (a, b))
    expect(0 < sum(a) < len(a), "some lost, some not: %r" % (a,))


def test_dns_latency():
    with Dnsmasq() as dns, Tardyd(udp_conf(dns.spec)) as d:
        add_toxic(d, "latency", latency=300)
        port = d.proxy_addr("u")[1][1]
        t0 = now()
        r = subprocess.run(["dig", "+time=2", "+tries=1", "@127.0.0.1",
                            "-p", str(port), NAMES[1]],
                           capture_output=True, timeout=10)
        took = now() - t0
        out = r.stdout.decode()
        ms = [int(line.split()[3]) for line in out.splitlines()
              if line.startswith(";; Query time:")]
        expect("10.9.0.2" in out, "answer: %r" % (out,))
        # The whole exchange takes at least the latency; dig's own "Query
        # time" starts when its send completes, a little after the send,
        # so it may read a millisecond or two short of 300.
        expect(took >= 0.300, "dig took %.3f s" % took)
        expect(ms and 295 <= ms[0] < 360, "query time: %r" % (out,))


if __name__ == "__main__":
    tardytest.main(globals())

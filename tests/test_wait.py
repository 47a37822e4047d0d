"""Waiting without polling: the long-poll GET /events?since=ID&wait=MS and
tardyctl wait, which a shell test uses to assert in one line what its
client did about a fault (issue 16).

A long-poll answers as soon as an event is recorded, or [] after MS and
never before; it holds no loop and delays no other request; a client
that leaves while it waits frees what it held at once; bad values are
400s naming wait, and too many waiters a 503. The numbers measured (wake
latency, other requests' latency with and without waiters) are printed
as TAP comments.
"""

import json
import os
import resource
import select
import socket
import statistics
import struct
import subprocess
import time

import tardytest as T
from tardytest import Lab, expect, expect_between, now

Tardyd = T.CheckedTardyd

WAKE_MS = 50            # an event to its long-poll's reply
OTHER_MS = 100          # any other request, however many polls wait
HELD = 0.2              # s with no reply: the request is held

# Room for the 503 test's 1024 waiters (tardyd inherits the limit).
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _soft != resource.RLIM_INFINITY and _soft < 4096:
    _soft = min(4096, _hard) if _hard != resource.RLIM_INFINITY else 4096
    resource.setrlimit(resource.RLIMIT_NOFILE, (_soft, _hard))


def note(fmt, *args):
    print("# " + fmt % args)


def send_get(api, path):
    """A GET on a connection of its own, not read yet: (socket, t_sent),
    t_sent taken before the request leaves, so a wait is never seen
    shorter than it was."""
    s = T.connect(T.parse_addr(api), timeout=70 * T.SLOW)
    t = now()
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tardytest\r\n"
               "Connection: close\r\n\r\n" % (path, api)).encode())
    return s, t


def answered(s, within):
    """Whether a reply starts within `within` seconds (not consumed)."""
    r, _, _ = select.select([s], [], [], within)
    return bool(r)


def read_reply(s):
    """(status, JSON body, t_first_byte) of a Connection: close reply."""
    data, t_first = b"", None
    while True:
        d = s.recv(65536)
        if t_first is None:
            t_first = now()
        if not d:
            break
        data += d
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body else None, t_first


def last_id(d):
    st, evs = d.api("GET", "/events")
    expect(st == 200, "GET /events: %s %r" % (st, evs))
    return evs[-1]["id"] if evs else 0


def settle(lab, conn):
    """Wait until connection conn's close is recorded: no event trails."""
    lab.wait_event("close", conn)


def timed_get(d, path):
    t0 = now()
    st, _ = d.api("GET", path)
    expect(st == 200, "GET %s: %d" % (path, st))
    return (now() - t0) * 1000


def fds(d):
    return len(os.listdir("/proc/%d/fd" % d.proc.pid))


def cpu_s(d):
    """tardyd's user + system CPU time so far."""
    with open("/proc/%d/stat" % d.proc.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rst_close(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


# --- the long-poll ----------------------------------------------------


def test_long_poll_answers_as_soon_as_an_event_is_recorded():
    with T.echo_server() as up, Lab(up.spec) as lab:
        api = lab.d.ready["api"]
        # With events after since already, at once, as without wait.
        c = lab.connect()
        c.close()
        s, t0 = send_get(api, "/events?since=0&wait=5000")
        st, evs, t1 = read_reply(s)
        expect(st == 200 and evs[0]["type"] == "accept", "%s %r" % (st, evs))
        expect((t1 - t0) * 1000 < WAKE_MS * T.SLOW,
               "answered after %.0f ms" % ((t1 - t0) * 1000))
        settle(lab, evs[0]["connection"])
        # With none, when the next one is recorded.
        deltas = []
        for _ in range(10):
            since = last_id(lab.d)
            s, _ = send_get(api, "/events?since=%d&wait=5000" % since)
            expect(not answered(s, HELD), "answered with nothing new")
            t_event = now()
            c = lab.connect()           # the accept is an event
            st, evs, t_reply = read_reply(s)
            c.close()
            deltas.append((t_reply - t_event) * 1000)
            expect(st == 200 and evs and evs[0]["id"] == since + 1 and
                   evs[0]["type"] == "accept" and evs[0]["proxy"] == "p",
                   "reply %s %r" % (st, evs))
            settle(lab, evs[0]["connection"])
        note("long-poll wake latency (event to reply) over %d: median "
             "%.2f ms, max %.2f ms", len(deltas), statistics.median(deltas),
             max(deltas))
        expect(max(deltas) < WAKE_MS * T.SLOW,
               "woken %.1f ms after the event" % max(deltas))


def test_long_poll_times_out_with_nothing_never_early():
    with Tardyd() as d:
        got = []
        for wait_ms in (50, 300, 1000):
            s, t0 = send_get(d.ready["api"], "/events?wait=%d" % wait_ms)
            st, evs, t1 = read_reply(s)
            ms = (t1 - t0) * 1000
            got.append("%d -> %.1f" % (wait_ms, ms))
            expect(st == 200 and evs == [], "%s %r" % (st, evs))
            expect_between(ms, wait_ms, wait_ms + 100 * T.SLOW,
                           "wait=%d answered after (ms)" % wait_ms)
        # wait=0 does not wait.
        s, t0 = send_get(d.ready["api"], "/events?wait=0")
        st, evs, t1 = read_reply(s)
        expect(st == 200 and evs == [] and t1 - t0 < WAKE_MS / 1000 * T.SLOW,
               "%s %r after %.3f s" % (st, evs, t1 - t0))
        # Nothing after an id still to come: it waits as well.
        s, t0 = send_get(d.ready["api"], "/events?since=1000&wait=200")
        st, evs, t1 = read_reply(s)
        expect(st == 200 and evs == [] and (t1 - t0) >= 0.2,
               "%s %r after %.3f s" % (st, evs, t1 - t0))
        note("wait=MS answered [] after (ms): %s", ", ".join(got))


def test_bad_wait_is_400_naming_wait():
    with T.echo_server() as up, Lab(up.spec) as lab:
        d = lab.d
        for v in ("abc", "-1", "0x10", "1e3", "", "+5", "1.5", "60001",
                  "99999999999999999999999"):
            st, body = d.api("GET", "/events?since=0&wait=" + v)
            expect(st == 400 and "wait" in body["error"] and
                   body["status"] == 400, "wait=%r: %s %r" % (v, st, body))
        # The largest is fine (answered at once: since is in the past).
        lab.connect().close()
        st, body = d.api("GET", "/events?since=0&wait=60000")
        expect(st == 200, "wait=60000: %s %r" % (st, body))


def test_waiters_do_not_delay_other_requests():
    with T.echo_server() as up, Lab(up.spec) as lab:
        d = lab.d
        paths = ("/proxies", "/version")

        def sample(n=200):
            return sorted(timed_get(d, paths[i % 2]) for i in range(n))

        def stats(ms):
            return "median %.2f, p99 %.2f, max %.2f ms" % (
                statistics.median(ms), ms[len(ms) * 99 // 100], ms[-1])

        sample(20)                      # warm up
        alone = sample()
        since = last_id(d)
        polls = [send_get(d.ready["api"], "/events?since=%d&wait=20000" %
                          since)[0] for _ in range(20)]
        time.sleep(HELD)
        expect(not any(answered(s, 0) for s in polls), "a poll answered")
        cpu0 = cpu_s(d)
        time.sleep(0.5)
        cpu = cpu_s(d) - cpu0
        loaded = sample()
        note("GET /proxies and /version, %d requests: no waiters %s; "
             "20 waiters %s", len(alone), stats(alone), stats(loaded))
        note("tardyd CPU over 0.5 s with 20 waiters: %.0f ms", cpu * 1000)
        expect(loaded[-1] < OTHER_MS * T.SLOW,
               "a request took %.1f ms with 20 waiters" % loaded[-1])
        expect(cpu < 0.1 * T.SLOW, "tardyd spun: %.2f s of CPU" % cpu)
        # One event answers all of them, each with it.
        t_event = now()
        lab.connect().close()
        last = 0
        for s in polls:
            st, evs, t = read_reply(s)
            last = max(last, (t - t_event) * 1000)
            expect(st == 200 and evs and evs[0]["id"] == since + 1,
                   "%s %r" % (st, evs))
        note("one event woke the 20 waiters: the last reply %.2f ms after "
             "it", last)
        expect(last < WAKE_MS * T.SLOW, "the last woken after %.1f ms" % last)


def test_too_many_waiters_is_503():
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 2200:
        T.skip("RLIMIT_NOFILE %d: too low for 1025 waiters" % soft)
    with Tardyd() as d:
        api = d.ready["api"]
        polls = []
        try:
            for _ in range(1024):
                polls.append(send_get(api, "/events?wait=30000")[0])
            # Once all are held, the 1025th is refused and told why (a
            # probe that comes before is held a millisecond).
            deadline = now() + 10 * T.SLOW
            while True:
                st, body = d.api("GET", "/events?wait=1")
                if st == 503 or now() > deadline:
                    break
                time.sleep(0.05)
            expect(st == 503 and "at most 1024" in body["error"] and
                   body["status"] == 503, "%s %r" % (st, body))
            expect(timed_get(d, "/version") < OTHER_MS * T.SLOW, "slow")
            # A slot freed by a client that leaves is taken again.
            polls.pop().close()
            deadline = now() + 5 * T.SLOW
            while True:
                s, _ = send_get(api, "/events?wait=300")
                st, body, _ = read_reply(s)
                if st == 200 or now() > deadline:
                    break
                time.sleep(0.05)
            expect(st == 200 and body == [], "%s %r" % (st, body))
        finally:
            for s in polls:
                s.close()


# --- clients that leave -----------------------------------------------


def test_clients_that_leave_while_waiting():
    with T.echo_server() as up, Lab(up.spec) as lab:
        d = lab.d
        time.sleep(0.1)
        base = fds(d)
        polls = [send_get(d.ready["api"], "/events?since=%d&wait=30000" %
                          last_id(d))[0] for _ in range(50)]
        time.sleep(HELD)
        expect(fds(d) >= base + 50, "%d descriptors, base %d" %
               (fds(d), base))
        # Half close, half reset: each frees its socket at once, not at
        # its deadline 30 s away.
        for i, s in enumerate(polls):
            if i % 2:
                rst_close(s)
            else:
                s.close()
        deadline = now() + 2 * T.SLOW
        while fds(d) > base and now() < deadline:
            time.sleep(0.02)
        expect(fds(d) <= base, "%d descriptors left, base %d" %
               (fds(d), base))
        # The daemon serves on, long-polls included.
        expect(d.api("GET", "/version")[0] == 200, "no answer")
        since = last_id(d)
        s, _ = send_get(d.ready["api"], "/events?since=%d&wait=5000" % since)
        expect(not answered(s, HELD), "answered early")
        lab.connect().close()
        st, evs, _ = read_reply(s)
        expect(st == 200 and evs[0]["id"] == since + 1, "%s %r" % (st, evs))
        # A client half-way through its request when it leaves.
        c = T.connect(T.parse_addr(d.ready["api"]))
        c.sendall(b"GET /events?wait=5000 HTTP/1.1\r\nHost: x")
        c.close()
        expect(d.api("GET", "/version")[0] == 200, "no answer")
    # Tardyd's check: exited 0, no sanitizer report, no leak.


def test_pipelined_request_behind_a_long_poll():
    with Tardyd() as d:
        api = d.ready["api"]
        c = T.connect(T.parse_addr(api), timeout=5 * T.SLOW)
        t0 = now()
        cpu0 = cpu_s(d)
        c.sendall(("GET /events?since=100&wait=400 HTTP/1.1\r\nHost: %s\r\n"
                   "\r\nGET /version HTTP/1.1\r\nHost: %s\r\n"
                   "Connection: close\r\n\r\n" % (api, api)).encode())
        data = b""
        while True:
            x = c.recv(65536)
            if not x:
                break
            data += x
        elapsed = now() - t0
        c.close()
        # In order, the first at its deadline; and no spinning meanwhile
        # on a socket that stays readable.
        expect(data.count(b"HTTP/1.1 200") == 2 and
               data.index(b"[]") < data.index(b'"version"'), repr(data))
        expect(elapsed >= 0.4, "answered after %.3f s" % elapsed)
        expect(cpu_s(d) - cpu0 < 0.2 * T.SLOW, "tardyd spun")


def test_shutdown_with_requests_waiting():
    # Freed by api_free; Tardyd's check finds no leak and a clean exit.
    with Tardyd() as d:
        polls = [send_get(d.ready["api"], "/events?wait=30000")[0]
                 for _ in range(5)]
        time.sleep(HELD)
        t0 = now()
        code = d.stop()
        expect(code == 0 and now() - t0 < 2 * T.SLOW,
               "exit %s after %.2f s: %s" % (code, now() - t0,
                                             d.log()[-3000:]))
        for s in polls:
            s.settimeout(2)
            try:
                expect(s.recv(100) == b"", "a reply at shutdown")
            except ConnectionResetError:
                pass
            s.close()


# --- tardyctl wait ----------------------------------------------------


def sh(script, lab, args=(), **env):
    """Start sh -c script args... with TARDYCTL, TARDY_API and env set."""
    e = dict(os.environ, TARDYCTL=T.TARDYCTL, TARDY_API=lab.d.ready["api"])
    e.pop("TARDY_API_TOKEN", None)
    e.update({k: str(v) for k, v in env.items()})
    return subprocess.Popen(["sh", "-c", script, "sh"] + list(args),
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=e)


def test_tardyctl_wait_for_client_closes_from_a_shell():
    with T.echo_server() as up, Lab(up.spec) as lab:
        since = last_id(lab.d)
        p = sh('"$TARDYCTL" wait p --closed-by client --count 2 '
               '--since "$SINCE" --timeout 5000 > "$OUT"; echo "exit $?"',
               lab, SINCE=since, OUT=os.path.join(lab.d.dir, "out"))
        time.sleep(HELD)
        expect(p.poll() is None, "tardyctl wait did not wait")
        for _ in range(2):
            c = lab.connect()
            c.sendall(b"x")
            expect(T.recv_exactly(c, 1) == b"x", "no echo")
            c.close()                    # the client's FIN
        t0 = now()
        out, err = p.communicate(timeout=10 * T.SLOW)
        expect(out.strip() == "exit 0" and err == "",
               "%r %r" % (out, err))
        with open(os.path.join(lab.d.dir, "out")) as f:
            lines = f.read().splitlines()
        expect(len(lines) == 2, "printed %r" % lines)
        evs = [json.loads(x) for x in lines]
        expect(all(e["type"] == "close" and e["proxy"] == "p" and
                   e["closed_by"] == "client" and e["close"] == "fin" and
                   e["id"] > since for e in evs), "%r" % evs)
        expect(evs[0]["connection"] < evs[1]["connection"], "%r" % evs)
        note("tardyctl wait exited %.1f ms after the second close",
             (now() - t0) * 1000)


def test_tardyctl_wait_counts_only_closes_from_now():
    with T.echo_server() as up, Lab(up.spec) as lab:
        lab.connect().close()
        before = last_id(lab.d)
        p = sh('"$TARDYCTL" wait p --timeout 5000', lab)
        # Closes until it has read its starting point and seen one.
        deadline = now() + 5 * T.SLOW
        while p.poll() is None and now() < deadline:
            lab.connect().close()
            time.sleep(0.05)
        out, err = p.communicate(timeout=10 * T.SLOW)
        expect(p.returncode == 0, "exit %d: %s" % (p.returncode, err))
        lines = out.splitlines()
        expect(len(lines) == 1 and json.loads(lines[0])["id"] > before,
               "%r (last id before: %d)" % (lines, before))


def test_tardyctl_wait_times_out_with_exit_1():
    with T.echo_server() as up, Lab(up.spec) as lab:
        c = lab.connect()
        c.close()                       # before: it does not count
        time.sleep(0.1)
        for args in (["--timeout", "400"],
                     ["--closed-by", "upstream", "--timeout", "400"]):
            t0 = now()
            p = sh('exec "$TARDYCTL" wait p "$@"', lab, args)
            if "upstream" in args:
                # A client's close meanwhile is not the upstream's.
                time.sleep(0.1)
                lab.connect().close()
            out, err = p.communicate(timeout=10 * T.SLOW)
            ms = (now() - t0) * 1000
            expect(p.returncode == 1 and out == "" and
                   "timed out after 400 ms" in err, "exit %d %r %r" %
                   (p.returncode, out, err))
            expect_between(ms, 400, 400 + 300 * T.SLOW, "exit after (ms)")


def test_tardyctl_wait_usage_and_errors():
    with T.echo_server() as up, Lab(up.spec) as lab:
        api = lab.d.ready["api"]

        def run(*args):
            return subprocess.run([T.TARDYCTL, "-a", api] + list(args),
                                  capture_output=True, text=True,
                                  timeout=20 * T.SLOW)
        for args, what in ((["wait"], "expected 1 argument"),
                           (["wait", "p", "--timeout", "0"], "--timeout"),
                           (["wait", "p", "--timeout", "86400001"],
                            "--timeout"),
                           (["wait", "p", "--count", "0"], "--count"),
                           (["wait", "p", "--count", "x"], "--count"),
                           (["wait", "p", "--closed-by", "me"], "--closed-by"),
                           (["wait", "p", "--since", "-1"], "--since"),
                           (["list", "--count", "2"], "does not apply")):
            r = run(*args)
            expect(r.returncode == 2 and what in r.stderr,
                   "%r: exit %d %r" % (args, r.returncode, r.stderr))
        # A misspelt proxy fails at once, not at the timeout.
        t0 = now()
        r = run("wait", "nope", "--timeout", "5000")
        expect(r.returncode == 1 and "proxy not found" in r.stderr and
               now() - t0 < 2, "exit %d %r" % (r.returncode, r.stderr))
        r = run("wait", "--help")
        expect(r.returncode == 0 and "--closed-by" in r.stdout, r.stdout)
        r = run("--help")
        expect("tardyctl wait PROXY" in r.stdout, r.stdout)


if __name__ == "__main__":
    T.main(globals())

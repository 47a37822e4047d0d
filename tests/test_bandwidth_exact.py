#!/usr/bin/env python3
"""bandwidth never delivers early (issue 13, item 7).

A client sends a request and reads the response through a bandwidth
toxic, timing every read from the moment it sent the request, as a
client with a timeout does. As in Toxiproxy, no byte may arrive earlier
than (bytes so far) / rate: to the millisecond, so a client timeout set
just short of size / rate fires. The last byte comes within a scheduling
margin of size / rate, so the rate is kept, not undercut. Rates are in
KB/s, 1 KB = 1000 bytes.

Both clocks are the client's, started before its request leaves and read
after each recv returns: whatever the scheduler does can only make a
read look later, never earlier, so the lower bounds are exact and only
the upper ones carry a margin.
"""

import threading
import time

import tardytest
from tardytest import Lab, Server, expect, now

EARLY = 0.0005                  # s: clock granularity, all the early allowed
MARGIN = 0.060 * tardytest.SLOW  # s: scheduling slack, for lateness only


def payload(n):
    return (bytes(range(251)) * (n // 251 + 1))[:n]


def responder(c):
    """Answer each request line "N\\n" with N bytes, in one write."""
    buf = b""
    while True:
        d = c.recv(4096)
        if not d:
            return
        buf += d
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            c.sendall(payload(int(line)))


def request(s, n, timeout=10.0):
    """Ask for n bytes and read them: (bytes, [(seconds since the request
    was sent, bytes so far)], one per read). Stops at timeout."""
    got = bytearray()
    marks = []
    t0 = now()
    s.sendall(b"%d\n" % n)
    deadline = t0 + timeout
    while len(got) < n:
        left = deadline - now()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            d = s.recv(65536)
        except OSError:         # socket.timeout included
            break
        t = now() - t0
        if not d:
            break
        got += d
        marks.append((t, len(got)))
    return bytes(got), marks


def check_paced(what, n, rate, got, marks):
    """Every read no earlier than its bytes at rate; the last byte within
    MARGIN of n at rate."""
    bps = rate * 1000.0
    want = n / bps
    expect(got == payload(n), "%s: got %d of %d bytes, or corrupted" %
           (what, len(got), n))
    print("# %s: first %d B after %.1f ms, last after %.1f ms "
          "(size/rate %.1f ms), %d reads" %
          (what, marks[0][1], marks[0][0] * 1000, marks[-1][0] * 1000,
           want * 1000, len(marks)))
    for t, b in marks:
        expect(t >= b / bps - EARLY,
               "%s: %d bytes had arrived after %.4f s, %.4f s early "
               "(they are due after %.4f s)" %
               (what, b, t, b / bps - t, b / bps))
    expect(marks[-1][0] <= want + MARGIN,
           "%s: the last byte came after %.4f s, more than %.3f s late" %
           (what, marks[-1][0], MARGIN))


def paced_response(n, rate):
    with Server(responder) as srv, Lab(srv.spec) as lab:
        lab.add("bandwidth", rate=rate)
        s = lab.connect()
        got, marks = request(s, n, timeout=n / (rate * 1000.0) + 5)
        s.close()
    check_paced("%d B at %d KB/s" % (n, rate), n, rate, got, marks)
    return marks


def test_2kB_is_not_all_at_once():
    # 2000 B at 10 KB/s take 200 ms: none of it may come at once.
    marks = paced_response(2000, 10)
    expect(marks[0][1] < 2000, "all 2000 B came in one read, after %.4f s" %
           marks[0][0])


def test_2kB_within_one_piece_waits_its_time():
    # 2000 B at 200 KB/s: less than a 10 ms piece, yet due after 10 ms,
    # not at once.
    paced_response(2000, 200)


def test_100kB():
    paced_response(100000, 200)         # 500 ms


def test_1MB():
    paced_response(1000000, 1000)       # 1 s


def test_client_timeout_short_of_size_over_rate_fires():
    # The case: 100 kB at 200 KB/s take 500 ms, so a client that
    # gives up after 499 ms must not have the whole response.
    with Server(responder) as srv, Lab(srv.spec) as lab:
        lab.add("bandwidth", rate=200)
        s = lab.connect()
        got, marks = request(s, 100000, timeout=0.499)
        s.close()
    expect(len(got) < 100000, "the whole 100000 B came within %.4f s" %
           (marks[-1][0] if marks else 0))
    print("# 499 ms timeout: %d of 100000 B had come" % len(got))


def test_each_request_paced_from_its_own_start():
    # Requests on one connection, each 5 ms after the last reply (less
    # than a piece): the time the link sat idle is no credit that lets the
    # next reply come sooner than its own size at the rate.
    with Server(responder) as srv, Lab(srv.spec) as lab:
        lab.add("bandwidth", rate=10)
        s = lab.connect()
        for i in range(3):
            time.sleep(0.005)
            got, marks = request(s, 2000, timeout=5)
            check_paced("request %d, 2000 B at 10 KB/s" % (i + 1), 2000, 10,
                        got, marks)
        s.close()


def test_upstream_is_not_early():
    n, rate = 100000, 200
    marks = []
    done = threading.Event()

    def sink(c):
        total = 0
        while total < n:
            d = c.recv(65536)
            if not d:
                break
            total += len(d)
            marks.append((now(), total))
        done.set()

    with Server(sink) as srv, Lab(srv.spec) as lab:
        lab.add("bandwidth", stream="upstream", rate=rate)
        s = lab.connect()
        t0 = now()
        s.sendall(payload(n))
        done.wait(5)
        s.close()
    expect(marks and marks[-1][1] == n, "the server got %r bytes" %
           (marks[-1][1] if marks else 0))
    marks = [(t - t0, b) for t, b in marks]
    bps = rate * 1000.0
    print("# upstream %d B at %d KB/s: last after %.1f ms" %
          (n, rate, marks[-1][0] * 1000))
    for t, b in marks:
        expect(t >= b / bps - EARLY, "upstream: %d bytes after %.4f s" %
               (b, t))
    expect(marks[-1][0] <= n / bps + MARGIN,
           "upstream: last byte after %.4f s" % marks[-1][0])


if __name__ == "__main__":
    tardytest.main(globals())

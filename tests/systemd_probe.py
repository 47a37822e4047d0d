"""Inside the systemd container of test_systemd_unit.py: echo servers and
the clients that prove each toxic acts through tardyd under its unit's
sandbox. Runs on Debian's python3-minimal (no json, no http): toxics are
added and removed with tardyctl, as an admin would.

    systemd_probe.py echo tcp|udp PORT   serve an echo (forever)
    systemd_probe.py hold PORT           hold a listening TCP port
    systemd_probe.py toxics TCP UDP      every toxic type on proxies p
                                         (TCP port) and u (UDP port);
                                         one "ok TYPE ..." or "not ok TYPE
                                         ..." line each, exit 1 if any
                                         failed
    systemd_probe.py http10 PORT N       N HTTP/1.0 requests for /version,
                                         each read to the server's EOF
    systemd_probe.py stop TCP            open, stalled and slowed
                                         connections through p, then
                                         systemctl stop tardyd: how long
                                         it took and what each client saw
"""

import errno
import socket
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"


def now():
    return time.monotonic()


def ctl(*args):
    r = subprocess.run(["tardyctl"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    if r.returncode != 0:
        raise AssertionError("tardyctl %s: %s" % (" ".join(args),
                                                   r.stdout.strip()))
    return r.stdout


def add(proxy, type_, *attrs, stream="downstream"):
    argv = ["toxic", "add", proxy, "-T", type_, "-s", stream, "-n", "t"]
    for a in attrs:
        argv += ["-A", a]
    ctl(*argv)


def remove(proxy):
    ctl("toxic", "remove", proxy, "t")


# --- servers ---------------------------------------------------------------

def echo_tcp(port):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((HOST, port))
    ls.listen(128)

    def serve(c):
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
        except OSError:
            pass
        finally:
            c.close()

    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def echo_udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, port))
    while True:
        d, peer = s.recvfrom(65536)
        s.sendto(d, peer)


def hold(port):
    s = socket.socket()
    s.bind((HOST, port))
    s.listen(1)
    while True:
        time.sleep(3600)


def wait_port(port, timeout=5.0):
    deadline = now() + timeout
    while True:
        try:
            socket.create_connection((HOST, port), 1).close()
            return
        except OSError:
            if now() > deadline:
                raise
            time.sleep(0.02)


# --- clients ---------------------------------------------------------------

def conn(port, timeout=2.0):
    return socket.create_connection((HOST, port), timeout)


def recv_all(s, n, timeout=3.0):
    """Up to n bytes, until EOF or timeout; (data, how it ended)."""
    s.settimeout(timeout)
    out = b""
    try:
        while len(out) < n:
            d = s.recv(n - len(out))
            if not d:
                return out, "eof"
            out += d
    except socket.timeout:
        return out, "timeout"
    except ConnectionResetError:
        return out, "reset"
    return out, "full"


def wait_end(s, timeout=3.0):
    """Read until EOF or reset; (bytes read, how, seconds)."""
    t0 = now()
    got, how = recv_all(s, 1 << 20, timeout)
    return len(got), how, now() - t0


def rtt(port, payload=b"ping"):
    s = conn(port)
    try:
        t0 = now()
        s.sendall(payload)
        got, how = recv_all(s, len(payload))
        return got == payload, how, now() - t0
    finally:
        s.close()


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def t_noop(p, u):
    ok, how, t = rtt(p)
    expect(ok and t < 0.5, "echo %s in %.3f s" % (how, t))
    return "rtt %.3f s" % t


def t_latency(p, u):
    add("p", "latency", "latency=200")
    ok, how, t = rtt(p)
    expect(ok and 0.2 <= t < 1.5, "echo %s in %.3f s" % (how, t))
    return "rtt %.3f s" % t


def t_bandwidth(p, u):
    add("p", "bandwidth", "rate=20")            # KB/s
    ok, how, t = rtt(p, b"b" * 6000)
    expect(ok and 0.29 <= t < 3, "6000 B %s in %.3f s" % (how, t))
    return "6000 B in %.3f s" % t


def t_slicer(p, u):
    add("p", "slicer", "average_size=16", "size_variation=0", "delay=20000")
    s = conn(p)
    t0 = now()
    s.sendall(b"s" * 160)
    reads, got = 0, b""
    s.settimeout(3)
    while len(got) < 160:
        d = s.recv(1000)
        if not d:
            break
        got += d
        reads += 1
    t = now() - t0
    s.close()
    expect(got == b"s" * 160 and reads >= 5 and t >= 0.15,
           "%d B in %d reads, %.3f s" % (len(got), reads, t))
    return "160 B in %d reads, %.3f s" % (reads, t)


def t_slow_close(p, u):
    add("p", "slow_close", "delay=400")
    s = conn(p)
    s.sendall(b"x")
    got, how = recv_all(s, 1)
    expect(got == b"x", "echo: %r %s" % (got, how))
    s.shutdown(socket.SHUT_WR)
    n, how, t = wait_end(s)
    s.close()
    expect(how == "eof" and 0.4 <= t < 2, "close %s after %.3f s" % (how, t))
    return "EOF %.3f s after the upstream's" % t


def t_timeout(p, u):
    add("p", "timeout", "timeout=300")
    s = conn(p)
    s.sendall(b"x")
    n, how, t = wait_end(s)
    s.close()
    expect(n == 0 and how in ("eof", "reset") and 0.25 <= t < 2,
           "%d B then %s after %.3f s" % (n, how, t))
    return "%s after %.3f s, no data" % (how, t)


def t_reset_peer(p, u):
    add("p", "reset_peer", "timeout=200")
    s = conn(p)
    s.sendall(b"x")
    n, how, t = wait_end(s)
    s.close()
    expect(n == 0 and how == "reset" and 0.15 <= t < 2,
           "%d B then %s after %.3f s" % (n, how, t))
    return "ECONNRESET after %.3f s" % t


def t_limit_data(p, u):
    add("p", "limit_data", "bytes=10")
    s = conn(p)
    s.sendall(b"l" * 100)
    got, how = recv_all(s, 1000)
    s.close()
    expect(got == b"l" * 10 and how == "eof", "%d B then %s" % (len(got),
                                                                 how))
    return "10 B then EOF"


def t_drop_syn(p, u):
    add("p", "drop_syn", stream="upstream")
    t0 = now()
    try:
        conn(p, timeout=0.5).close()
        raise AssertionError("connected")
    except socket.timeout:
        pass
    return "connect timed out after %.3f s" % (now() - t0)


def t_refuse(p, u):
    add("p", "refuse", stream="upstream")
    try:
        conn(p).close()
        raise AssertionError("connected")
    except ConnectionRefusedError:
        pass
    return "ECONNREFUSED"


def t_blackhole(p, u):
    add("p", "blackhole")
    s = conn(p)
    s.sendall(b"x")
    got, how = recv_all(s, 1, timeout=0.4)
    s.close()
    expect(got == b"" and how == "timeout", "%r %s" % (got, how))
    return "recv timed out"


def t_stall(p, u):
    add("p", "stall")
    s = conn(p)
    s.sendall(b"x")
    got, how = recv_all(s, 1, timeout=0.4)
    expect(got == b"" and how == "timeout", "while stalled: %r %s" %
           (got, how))
    remove("p")
    got, how = recv_all(s, 1)
    s.close()
    expect(got == b"x", "after the stall: %r %s" % (got, how))
    return "held, then delivered"


def udp_replies(port, wait=0.4):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(wait)
    s.sendto(b"d", (HOST, port))
    n = 0
    try:
        while True:
            s.recvfrom(100)
            n += 1
    except socket.timeout:
        pass
    s.close()
    return n


def t_loss(p, u):
    expect(udp_replies(u) == 1, "no echo without the toxic")
    add("u", "loss", "probability=1")
    n = udp_replies(u)
    expect(n == 0, "%d replies" % n)
    return "datagram lost"


def t_duplicate(p, u):
    add("u", "duplicate", "probability=1")
    n = udp_replies(u)
    expect(n == 2, "%d replies" % n)
    return "datagram twice"


UDP_TOXICS = ("loss", "duplicate")


def toxics(p, u):
    """Every toxic type, each on its own: add, probe, remove."""
    wait_port(p)
    failed = 0
    for name, fn in sorted(globals().items()):
        if not name.startswith("t_"):
            continue
        type_ = name[2:]
        t0 = now()
        try:
            detail = fn(p, u)
            print("ok %s: %s (%.0f ms)" % (type_, detail,
                                            (now() - t0) * 1000))
        except Exception as e:
            failed += 1
            print("not ok %s: %s: %s" % (type_, type(e).__name__, e))
        finally:
            try:
                remove("u" if type_ in UDP_TOXICS else "p")
            except AssertionError:
                pass            # stall removed itself, or add failed
        sys.stdout.flush()
    return 1 if failed else 0


def http10(port, n):
    """HTTP/1.0 clients: the server closes first, which leaves its side
    of each connection in TIME_WAIT on the API's port."""
    for _ in range(n):
        s = conn(port)
        s.sendall(b"GET /version HTTP/1.0\r\nUser-Agent: probe\r\n\r\n")
        got, how = recv_all(s, 1 << 16)
        s.close()
        expect(how == "eof" and b" 200 " in got.split(b"\r\n")[0],
               "HTTP/1.0: %s after %r" % (how, got[:80]))
    return 0


def stop(p):
    """Connections open when systemd stops tardyd: one idle, others with
    the echo's answers held by a stall and more data in flight. Each must
    end (EOF or reset) as soon as the daemon is gone."""
    wait_port(p)
    idle = conn(p)
    add("p", "stall")
    stalled = [conn(p) for _ in range(3)]
    for s in stalled:
        s.sendall(b"held" * 1000)
    # The echo's answers pile up behind the stall, and so do these.
    flowing = conn(p)
    flowing.sendall(b"f" * 100000)
    time.sleep(0.2)
    t0 = now()
    r = subprocess.run(["systemctl", "stop", "tardyd"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    took = now() - t0
    print("stop exit %d in %.3f s %s" % (r.returncode, took,
                                          r.stdout.strip()))
    bad = r.returncode != 0
    for what, s in [("idle", idle), ("flowing", flowing)] + \
            [("stalled", s) for s in stalled]:
        n, how, t = wait_end(s, timeout=2)
        print("%s: %d B then %s" % (what, n, how))
        bad = bad or how not in ("eof", "reset")
        s.close()
    return 1 if bad else 0


def main(argv):
    cmd = argv[1]
    if cmd == "echo":
        (echo_tcp if argv[2] == "tcp" else echo_udp)(int(argv[3]))
    elif cmd == "hold":
        hold(int(argv[2]))
    elif cmd == "toxics":
        return toxics(int(argv[2]), int(argv[3]))
    elif cmd == "http10":
        return http10(int(argv[2]), int(argv[3]))
    elif cmd == "stop":
        return stop(int(argv[2]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

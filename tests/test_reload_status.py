"""`systemctl reload`'s exit status is what the running daemon did.

systemd 252 (Debian 12) takes a reload's result from the status of the
unit's ExecReload commands. Those commands are run here exactly as the
generated unit gives them (its paths pointed at the built tardyd, the
test's configuration and ready file, $MAINPID at the daemon): a good file
must succeed, a broken one fail, and one that passes `tardyd -t` but
cannot be applied (a proxy on a port another socket holds) must fail with
the daemon's reason while the daemon keeps its running configuration.
The last is what `kill -HUP $MAINPID` got wrong: the signal was sent, so
the reload "succeeded".

Then `tardyd --reload` itself: the answer is that of a reload begun after
it was asked, whatever other SIGHUPs arrive; and it fails, rather than
hangs or guesses, when the process is not the one that wrote the ready
file, exits, or never answers.
"""

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time

import tardytest as T
from tardytest import Tardyd, echo_server, expect, now

BUILDDIR = os.path.dirname(T.TARDYD)
UNIT = os.path.join(BUILDDIR, "systemd", "tardyd.service")

# Every daemon these tests stop must exit cleanly (no sanitizer report).
Tardyd = T.CheckedTardyd


def unit_exec_reload():
    """The unit's ExecReload command lines, continuations joined."""
    with open(UNIT) as f:
        text = f.read().replace("\\\n", " ")
    lines = re.findall(r"^ExecReload=(.*)$", text, re.M)
    expect(lines, "no ExecReload in %s" % UNIT)
    return lines


def exec_reload(d):
    """Run the unit's ExecReload commands for daemon d as systemd does:
    in order, stopping at the first that fails. Returns (status, output
    of every command run)."""
    out = ""
    for line in unit_exec_reload():
        argv = []
        for word in shlex.split(line):
            if word == "$MAINPID":
                word = str(d.proc.pid)
            word = re.sub(r"^/\S*/tardyd$", T.TARDYD, word)
            word = re.sub(r"^/\S*/tardy/tardy\.conf$", d.config_path, word)
            word = re.sub(r"^/run/tardy/ready\.json$", d.ready_file, word)
            argv.append(word)
        r = subprocess.run(argv, capture_output=True, text=True,
                           timeout=30 * T.SLOW)
        out += r.stdout + r.stderr
        if r.returncode != 0:
            return r.returncode, out
    return 0, out


def reload_cmd(d, pid=None, timeout=30):
    """tardyd --reload against d; returns (status, stderr, seconds)."""
    t0 = now()
    r = subprocess.run([T.TARDYD, "-q", "--ready-file", d.ready_file,
                        "--reload", str(pid or d.proc.pid)],
                       capture_output=True, text=True,
                       timeout=timeout * T.SLOW)
    return r.returncode, r.stdout + r.stderr, now() - t0


def conf(upstream, extra=""):
    return ("[tardy]\napi = 127.0.0.1:0\n"
            "[proxy a]\nlisten = 127.0.0.1:0\nupstream = %s\n%s"
            % (upstream, extra))


def proxy_b(listen, upstream):
    return "[proxy b]\nlisten = %s\nupstream = %s\n" % (listen, upstream)


def proxies(d):
    st, body = d.api("GET", "/proxies")
    expect(st == 200, "GET /proxies: %s %r" % (st, body))
    return sorted(body)


def echoes(d, name):
    s = T.connect(d.proxy_addr(name))
    try:
        s.sendall(b"ping")
        return T.recv_exactly(s, 4) == b"ping"
    finally:
        s.close()


def test_good_file_reloads():
    with echo_server() as up, Tardyd(conf(up.spec)) as d:
        d.write_config(conf(up.spec, proxy_b("127.0.0.1:0", up.spec)))
        status, out = exec_reload(d)
        expect(status == 0, "reload of a good file: %d %s" % (status, out))
        # The answer came after the reload: no waiting needed here.
        d.ready = d.read_ready()
        expect(d.ready["last_reload"] == "ok", "ready file %r" % d.ready)
        expect(proxies(d) == ["a", "b"], "proxies %r" % proxies(d))
        expect(echoes(d, "b"), "the new proxy forwards")


def test_broken_file_fails_with_its_line():
    with echo_server() as up, Tardyd(conf(up.spec)) as d:
        d.write_config(conf(up.spec, "[proxy b\n"))
        status, out = exec_reload(d)
        expect(status != 0, "reload of a broken file succeeded: %s" % out)
        expect(re.search(r"tardy\.conf:6: ", out),
               "no file:line in %r" % out)
        expect(d.read_ready()["generation"] == 0,
               "a file that fails -t reached the daemon")
        # Without the -t line in front, the daemon's own answer says so.
        status, out, _ = reload_cmd(d)
        expect(status == 1, "--reload of a broken file: %d %s" %
               (status, out))
        expect("tardy.conf:6: " in out and "kept its running "
               "configuration" in out, "reason: %r" % out)
        expect(proxies(d) == ["a"], "proxies %r" % proxies(d))


def test_unappliable_file_fails_with_the_daemons_reason():
    with echo_server() as up, Tardyd(conf(up.spec)) as d:
        held = socket.socket()
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        try:
            d.write_config(conf(up.spec, proxy_b("127.0.0.1:%d" % port,
                                                 up.spec)))
            r = subprocess.run([T.TARDYD, "-t", "-c", d.config_path],
                               capture_output=True, text=True, timeout=10)
            expect(r.returncode == 0, "-t rejected it: %s" % r.stderr)
            status, out = exec_reload(d)
            print("# " + out.strip().splitlines()[-1])
            expect(status == 1, "reload of a file the daemon cannot apply "
                   "exited %d: %r" % (status, out))
            expect("address already in use" in out and
                   ":%d" % port in out, "the daemon's reason: %r" % out)
            expect(d.read_ready()["last_reload"] == "failed", "ready file")
            expect(proxies(d) == ["a"], "proxies %r" % proxies(d))
            expect(echoes(d, "a"), "the old proxy still forwards")
        finally:
            held.close()
        # The port free, the same file applies.
        status, out = exec_reload(d)
        expect(status == 0, "reload once the port is free: %s" % out)
        d.ready = d.read_ready()
        expect(proxies(d) == ["a", "b"], "proxies %r" % proxies(d))


def test_each_answer_is_for_the_file_as_it_was():
    # Alternate applicable and unappliable files, first alone (an answer
    # read before the signal took effect would be the previous file's, and
    # a generation read after it would wait for a reload that never
    # comes), then with other SIGHUPs landing all the while: each --reload
    # must report its own file's fate.
    with echo_server() as up, Tardyd(conf(up.spec)) as d:
        held = socket.socket()
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        bad = conf(up.spec, proxy_b("127.0.0.1:%d" %
                                    held.getsockname()[1], up.spec))
        stop = threading.Event()

        def noise():
            while not stop.is_set():
                os.kill(d.proc.pid, signal.SIGHUP)
                time.sleep(0.003)

        th = threading.Thread(target=noise, daemon=True)
        try:
            for i in range(80):
                if i == 40:
                    th.start()
                good = i % 2 == 0
                d.write_config(conf(up.spec, "connect_timeout = %d\n" %
                                    (1000 + i)) if good else bad)
                status, out, took = reload_cmd(d)
                expect(status == (0 if good else 1),
                       "reload %d of a %s file: %d %r" %
                       (i, "good" if good else "bad", status, out))
                expect(took < 2 * T.SLOW, "reload %d took %.2f s" %
                       (i, took))
        finally:
            stop.set()
            if th.is_alive():
                th.join()
            held.close()
        gen = d.read_ready()["generation"]
        print("# 80 reloads answered among %d in all" % gen)
        expect(gen > 80, "the noise reached the daemon")


def test_ready_file_follows_no_planted_symlink():
    # The ready file used to be written through PATH.tmp.PID: anyone who
    # could write the directory could plant a symlink there and have the
    # daemon overwrite what it points to. Each name it might use is
    # planted here; the victim must stay as it was, and the ready file
    # must be rewritten all the same.
    with Tardyd("") as d:
        victim = os.path.join(d.dir, "victim")
        with open(victim, "w") as f:
            f.write("keep me\n")
        pid = d.ready["pid"]
        os.symlink(victim, "%s.tmp.%d" % (d.ready_file, pid))
        d.reload()
        with open(victim) as f:
            expect(f.read() == "keep me\n", "the daemon wrote through a "
                   "planted symlink")
        expect(d.ready["generation"] == 1, "ready file %r" % d.ready)
        mode = os.stat(d.ready_file).st_mode & 0o777
        expect(mode == 0o644, "ready file mode %o" % mode)
        left = [n for n in os.listdir(d.dir) if n.startswith(
            os.path.basename(d.ready_file) + ".") and ".tmp." not in n]
        expect(left == [], "temporary files left: %r" % left)


def test_reload_of_an_unchanged_file_touches_nothing():
    # A reload compares the file with the file it replaces, not with the
    # live proxies: what the API did to a file's proxy stays until its
    # section changes (it used to restart the proxy, closing its
    # connections and dropping the API's toxics).
    with echo_server() as up:
        conf = ("[proxy p]\nlisten = 127.0.0.1:0\nupstream = %s\n"
                "[proxy q]\nlisten = 127.0.0.1:0\nupstream = %s\n"
                "[toxic p slow]\ntype = latency\nlatency = 50\n"
                % (up.spec, up.spec))
        with Tardyd(conf) as d:
            p_addr = d.proxy_addr("p")[1]
            s = socket.create_connection(p_addr, timeout=5)
            s.sendall(b"x")
            T.recv_exactly(s, 1)
            st, _ = d.api("POST", "/proxies/p/toxics",
                          {"type": "limit_data", "name": "api_toxic",
                           "attributes": {"bytes": 100000}})
            expect(st == 200, "API toxic: %s" % st)
            st, _ = d.api("DELETE", "/proxies/p/toxics/slow")
            expect(st == 204, "remove the file's toxic: %s" % st)
            st, _ = d.api("POST", "/proxies/q", {"enabled": False})
            expect(st == 200, "disable q: %s" % st)
            d.reload()          # the same file
            expect(d.ready["last_reload"] == "ok", "reload %r" % d.ready)
            st, p = d.api("GET", "/proxies/p")
            expect([t["name"] for t in p["toxics"]] == ["api_toxic"],
                   "p's toxics after reload: %r" % p["toxics"])
            st, q = d.api("GET", "/proxies/q")
            expect(q["enabled"] is False, "q re-enabled by the reload")
            s.sendall(b"y")
            expect(T.recv_exactly(s, 1) == b"y", "p's connection closed")
            # A changed section is applied: p restarts with its toxic.
            d.write_config(conf.replace("latency = 50", "latency = 60"))
            d.reload()
            st, p = d.api("GET", "/proxies/p")
            expect(sorted(t["name"] for t in p["toxics"]) ==
                   ["api_toxic", "slow"], "changed section: %r" %
                   p["toxics"])
            s.close()


def test_reload_looks_up_names_without_blocking():
    # A listen address given as a host name is looked up on the event
    # loop: while the resolver takes its time (here one that never
    # answers: 2 attempts of 2 s), the API and the proxies carry on, and
    # the reload then fails with the reason.
    port = T.free_port((socket.SOCK_DGRAM,))
    with echo_server() as up, T.Dnsmasq({"svc.tardy.test": "127.0.0.1"}) \
            as dns:
        slow = os.path.join(dns.dir, "slow.conf")
        with open(slow, "w") as f:
            f.write("nameserver 127.0.0.1:%d\n" % port)
        base = "[proxy p]\nlisten = 127.0.0.1:0\nupstream = %s\n" % up.spec
        env = dict(os.environ, TARDY_RESOLV_CONF=slow)
        with Tardyd(base, env=env) as d:
            p_addr = d.proxy_addr("p")[1]
            d.write_config(base + "[proxy q]\nlisten = slow.tardy.test:0\n"
                           "upstream = %s\n" % up.spec)
            t0 = now()
            d.proc.send_signal(signal.SIGHUP)
            time.sleep(0.2)
            for _ in range(5):
                t1 = now()
                st, _ = d.api("GET", "/version")
                expect(st == 200 and now() - t1 < 0.5,
                       "API during the lookup: %s after %.2f s" %
                       (st, now() - t1))
            with socket.create_connection(p_addr, timeout=2) as c:
                c.sendall(b"hi")
                expect(T.recv_exactly(c, 2) == b"hi", "p during the lookup")
            expect(now() - t0 < 1.5, "the lookup should still be running")
            r = d.wait_ready(generation=1, timeout=10)
            expect(r["last_reload"] == "failed" and "proxy q: listen: "
                   "cannot resolve \"slow.tardy.test\"" in
                   (r["reload_error"] or ""), "ready %r" % r)
            st, ps = d.api("GET", "/proxies")
            expect(sorted(ps) == ["p"], "proxies %r" % sorted(ps))
        # A name the resolver knows: the reload applies it.
        env = dict(os.environ, TARDY_RESOLV_CONF=dns.resolv_conf(
            os.path.join(dns.dir, "resolv.conf")))
        with Tardyd(base, env=env) as d:
            d.write_config(base + "[proxy q]\nlisten = svc.tardy.test:0\n"
                           "upstream = %s\n" % up.spec)
            r = d.reload()
            expect(r["last_reload"] == "ok" and
                   r["proxies"]["q"].startswith("127.0.0.1:"), "ready %r" % r)


def test_sighup_during_a_lookup_reloads_the_new_file():
    # A second SIGHUP while the first reload still looks up its names
    # abandons it for the file as it is now: the one answer is the new
    # file's, at once.
    port = T.free_port((socket.SOCK_DGRAM,))
    with echo_server() as up:
        tmp = os.path.join(T.tempfile.mkdtemp(prefix="tardyslow."), "r")
        with open(tmp, "w") as f:
            f.write("nameserver 127.0.0.1:%d\n" % port)
        base = "[proxy p]\nlisten = 127.0.0.1:0\nupstream = %s\n" % up.spec
        env = dict(os.environ, TARDY_RESOLV_CONF=tmp)
        with Tardyd(base, env=env) as d:
            d.write_config(base + "[proxy q]\nlisten = slow.tardy.test:0\n"
                           "upstream = %s\n" % up.spec)
            d.proc.send_signal(signal.SIGHUP)
            time.sleep(0.2)
            d.write_config(base + "[proxy r]\nlisten = 127.0.0.1:0\n"
                           "upstream = %s\n" % up.spec)
            t0 = now()
            d.proc.send_signal(signal.SIGHUP)
            r = d.wait_ready(generation=2, timeout=10)
            expect(now() - t0 < 1.0, "the new file waited %.1f s" %
                   (now() - t0))
            expect(r["last_reload"] == "ok" and sorted(r["proxies"]) ==
                   ["p", "r"], "ready %r" % r)
        T.shutil.rmtree(os.path.dirname(tmp), ignore_errors=True)


def test_wrong_pid_is_refused_unsignalled():
    with echo_server() as up, Tardyd(conf(up.spec)) as d:
        other = subprocess.Popen(["sleep", "30"])
        try:
            status, out, _ = reload_cmd(d, pid=other.pid)
            expect(status == 1 and "belongs to pid %d" % d.proc.pid in out,
                   "%d %r" % (status, out))
            expect(other.poll() is None, "the other process was signalled")
            expect(d.read_ready()["generation"] == 0, "tardyd reloaded")
        finally:
            other.kill()
            other.wait()


def fake_daemon(tmpdir, on_hup):
    """A process that wrote a ready file as tardyd does but handles
    SIGHUP its own way (python -c), reaped as soon as it exits."""
    ready = os.path.join(tmpdir, "fake.json")
    code = ("import json, os, signal, sys, time\n"
            "signal.signal(signal.SIGHUP, %s)\n"
            "json.dump({'api': None, 'proxies': {}, 'pid': os.getpid(),"
            " 'generation': 3, 'last_reload': 'ok'}, open(%r, 'w'))\n"
            "time.sleep(60)\n" % (on_hup, ready))
    p = subprocess.Popen([os.environ.get("PYTHON3", "python3"), "-c", code])
    threading.Thread(target=p.wait, daemon=True).start()
    deadline = now() + 5
    while now() < deadline:
        try:
            with open(ready) as f:
                if json.load(f)["pid"] == p.pid:
                    return p, ready
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    p.kill()
    raise AssertionError("fake daemon did not start")


class Fake:
    def __init__(self, ready, pid):
        self.ready_file, self.pid = ready, pid

    @property
    def proc(self):
        return self


def test_daemon_that_exits_or_never_answers():
    with Tardyd(args=["-p", "a=127.0.0.1:0=127.0.0.1:9"]) as d:
        p, ready = fake_daemon(d.dir, "lambda *a: sys.exit(0)")
        status, out, took = reload_cmd(Fake(ready, p.pid))
        expect(status == 1 and "exited during the reload" in out,
               "%d %r" % (status, out))
        expect(took < 5, "took %.1f s to notice" % took)
        p, ready = fake_daemon(d.dir, "signal.SIG_IGN")
        try:
            status, out, took = reload_cmd(Fake(ready, p.pid))
            expect(status == 1 and "no answer" in out, "%d %r" %
                   (status, out))
            T.expect_between(took, 9.9, 12 * T.SLOW, "wait for an answer")
        finally:
            p.kill()


T.main(globals())

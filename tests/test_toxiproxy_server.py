"""tardyd started as toxiproxy-server, and Toxiproxy's JSON config.

Suites, scripts and container images start Toxiproxy as
`toxiproxy-server -host=H -port=P -config=FILE`: the same command line
must start tardyd, in Go's flag syntax, with LOG_LEVEL, and a
non-loopback -host must serve the API without a token, as Toxiproxy does,
saying so. tardyd's own syntax needs an explicit opt-in for that. The JSON
config (the /populate body) is read by -config and by `tardyd -c`.
"""

import json
import os
import signal
import socket
import subprocess
import tempfile
import time

import tardytest
from tardytest import (Tardyd, echo_server, expect, free_port, http, main,
                       now, recv_exactly)

SERVER = os.environ.get("TOXIPROXY_SERVER",
                        os.path.join(os.getcwd(), "toxiproxy-server"))

# Every daemon these tests stop must exit cleanly (no sanitizer report).
Tardyd = tardytest.CheckedTardyd


class Server:
    """toxiproxy-server with the given flags, waited for on its port."""

    def __init__(self, *flags, port=None, env=None, wait=True):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="tardytp.")
        self.err_path = os.path.join(self.dir, "stderr")
        self.err = open(self.err_path, "wb")
        argv = [SERVER] + [f.replace("PORT", str(self.port)) for f in flags]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=self.err, env=env)
        if wait:
            self.wait()

    def wait(self):
        deadline = now() + 5 * tardytest.SLOW
        while now() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("toxiproxy-server exited %d: %s" %
                                     (self.proc.returncode, self.log()))
            try:
                st, v = self.api("GET", "/version")
                if st == 200:
                    return
            except OSError:
                pass
            time.sleep(0.01)
        raise AssertionError("toxiproxy-server not up: %s" % self.log())

    def api(self, method, path, body=None):
        return http(method, "http://127.0.0.1:%d%s" % (self.port, path),
                    body)

    def log(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(5 * tardytest.SLOW)
        self.err.close()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def run(*argv, env=None):
    r = subprocess.run([SERVER] + list(argv), capture_output=True, text=True,
                       timeout=10, env=env)
    return r.returncode, r.stdout, r.stderr


def write_json(obj):
    fd, path = tempfile.mkstemp(prefix="tardytp.", suffix=".json")
    with os.fdopen(fd, "w") as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj, indent=2))
    return path


def echo_through(listen, payload=b"hello"):
    fam, sa = tardytest.parse_addr(listen)
    with socket.create_connection(sa, timeout=5) as s:
        s.sendall(payload)
        return recv_exactly(s, len(payload))


def test_version_help_and_bad_flags():
    rc, out, err = run("-version")
    expect(rc == 0 and out.startswith("toxiproxy-server version "),
           "-version: %d %r %r" % (rc, out, err))
    for flag in ("-help", "--help", "-h"):
        rc, out, err = run(flag)
        expect(rc == 0 and "-config string" in out and "-host string" in out
               and "-seed int" in out, "%s: %d %r" % (flag, rc, out))
    for argv, want in ((["-bogus"], "flag provided but not defined: -bogus"),
                       (["--nope=1"], "flag provided but not defined: -nope"),
                       (["-port"], "flag needs an argument: -port"),
                       (["-seed", "x"],
                        'invalid value "x" for flag -seed: parse error'),
                       (["-version=maybe"],
                        'invalid boolean value "maybe" for -version')):
        rc, out, err = run(*argv)
        expect(rc == 2 and err.startswith(want) and "Usage of" in err,
               "%r: %d %r" % (argv, rc, err))


def test_flags_in_every_go_syntax():
    with echo_server() as up:
        conf = write_json([{"name": "redis", "listen": "127.0.0.1:0",
                            "upstream": up.spec}])
        try:
            # testcontainers-go's form, then "-flag value" and "--flag".
            for flags in (["-host=127.0.0.1", "-port=PORT", "-config=" + conf,
                           "-seed=42", "-proxy-metrics",
                           "-runtime-metrics=true"],
                          ["-host", "localhost", "-port", "PORT", "-config",
                           conf, "-seed", "-7"],
                          ["--host=127.0.0.1", "--port", "PORT",
                           "--config=" + conf, "--", "ignored"]):
                with Server(*flags) as s:
                    st, p = s.api("GET", "/proxies/redis")
                    expect(st == 200 and p["upstream"] == up.spec,
                           "%r: %s %r" % (flags, st, p))
                    expect(echo_through(p["listen"]) == b"hello",
                           "%r: data through the config's proxy" % flags)
                expect(s.proc.returncode == 0, "SIGTERM: exit %s" %
                       s.proc.returncode)
        finally:
            os.unlink(conf)


def test_non_loopback_host_is_tokenless_and_says_so():
    # As Toxiproxy: -host=0.0.0.0 serves the API to anyone, no token. The
    # test only ever connects over loopback.
    with Server("-host=0.0.0.0", "-port=PORT") as s:
        st, v = s.api("GET", "/version")
        expect(st == 200, "API on 0.0.0.0 without a token: %s" % st)
        expect("0.0.0.0:%d is not a loopback address and no token is "
               "required" % s.port in s.log(), "said: %s" % s.log())


def test_tardyd_syntax_needs_the_opt_in():
    port = free_port()
    d = Tardyd(args=["-a", "0.0.0.0:%d" % port], wait=False)
    rc = d.proc.wait(5 * tardytest.SLOW)
    log = d.log()
    d.close()
    expect(rc == 1 and "not a loopback address" in log and "--api-open" in
           log, "no opt-in: %s %s" % (rc, log))
    with Tardyd(args=["-a", "0.0.0.0:0", "--api-open"]) as d:
        st, _ = http("GET", "http://127.0.0.1:%s/version" %
                     d.ready["api"].rsplit(":", 1)[1])
        expect(st == 200, "--api-open: %s" % st)
        expect("no token is required" in d.log(), "said: %s" % d.log())
    with Tardyd("[tardy]\napi_open = yes\n", args=["-a", "0.0.0.0:0"]) as d:
        expect("no token is required" in d.log(), "api_open: %s" % d.log())


def test_log_level():
    env = dict(os.environ, LOG_LEVEL="debug")
    with Server("-host=127.0.0.1", "-port=PORT", env=env) as s:
        s.api("GET", "/version")
        time.sleep(0.05)
        expect("api: GET /version: 200" in s.log(), "debug: %s" % s.log())
    env["LOG_LEVEL"] = "error"
    with Server("-host=127.0.0.1", "-port=PORT", env=env) as s:
        expect("listening" not in s.log(), "error level: %s" % s.log())
    env["LOG_LEVEL"] = "loud"
    with Server("-host=127.0.0.1", "-port=PORT", env=env) as s:
        expect("unknown LOG_LEVEL value" in s.log(), "bad: %s" % s.log())


def test_json_config_with_tardyd_c():
    with echo_server() as up:
        conf = json.dumps([
            {"name": "a", "listen": "127.0.0.1:0", "upstream": up.spec},
            {"name": "b", "upstream": "db.example.invalid:5432",
             "enabled": False, "comment": "unknown fields are ignored"},
            {"name": "c", "listen": "127.0.0.1:0", "upstream": up.spec,
             "toxics": [{"type": "latency", "stream": "upstream",
                         "attributes": {"latency": 200}}]},
        ], indent=2)
        path = write_json(conf)
        try:
            with Tardyd(args=["-c", path]) as d:
                st, a = d.api("GET", "/proxies/a")
                expect(echo_through(a["listen"]) == b"hello", "a echoes")
                st, b = d.api("GET", "/proxies/b")
                expect(b["enabled"] is False and b["listen"] ==
                       "127.0.0.1:0", "b: %r" % b)
                st, c = d.api("GET", "/proxies/c")
                expect([t["type"] for t in c["toxics"]] == ["latency"],
                       "c's toxic: %r" % c)
                t0 = now()
                echo_through(c["listen"])
                expect(now() - t0 >= 0.2, "c's latency acts")
                # A reload of the JSON file applies its changes.
                with open(path, "w") as f:
                    f.write(json.dumps([{"name": "a",
                                         "listen": "127.0.0.1:0",
                                         "upstream": up.spec}]))
                d.reload()
                st, ps = d.api("GET", "/proxies")
                expect(sorted(ps) == ["a"], "after reload: %r" % ps)
            r = subprocess.run([tardytest.TARDYD, "-t", "-c", path],
                               capture_output=True, text=True, timeout=10)
            expect(r.returncode == 0 and "configuration OK" in r.stdout,
                   "-t: %r" % (r,))
        finally:
            os.unlink(path)


def test_json_config_errors_name_entry_and_field():
    bad = ('[{"name": "a", "upstream": 5},\n'
           ' {"listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"},\n'
           ' {"name": "c", "upstream": "127.0.0.1:1", "enabled": "yes"},\n'
           ' {"name": "d", "upstream": "-bad-:1"},\n'
           ' {"name": "e", "upstream": "127.0.0.1:1",\n'
           '  "toxics": [{"type": "latency", "attributes": {"latency": -1}}]}]')
    path = write_json(bad)
    try:
        for argv in ([tardytest.TARDYD, "-t", "-c", path],
                     [SERVER, "-host=127.0.0.1", "-port=%d" % free_port(),
                      "-config=" + path]):
            r = subprocess.run(argv, capture_output=True, text=True,
                               timeout=10)
            for want in ('%s: proxy 1 ("a"): upstream must be a string',
                         "%s: proxy 2: missing required field: name",
                         '%s: proxy 3 ("c"): enabled must be true or false',
                         '%s: proxy 4 ("d"): upstream: invalid address',
                         '%s: toxic "latency_downstream": attribute latency'):
                expect(want % path in r.stderr, "%s: %r not in %s" % (
                    argv[0], want % path, r.stderr))
            expect(r.returncode == 1, "%s: exit %d" % (argv[0],
                                                         r.returncode))
        with open(path, "w") as f:
            f.write('[{"name": "a",\n "upstream": }]')
        r = subprocess.run([tardytest.TARDYD, "-t", "-c", path],
                           capture_output=True, text=True, timeout=10)
        expect(r.returncode == 1 and "%s:2:" % path in r.stderr,
               "syntax error names the line: %r" % r.stderr)
    finally:
        os.unlink(path)


main(globals())

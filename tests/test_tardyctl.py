"""tardyctl against a real tardyd: every subcommand, its output, its exit
status (0 done, 1 refused or unreachable, 2 usage) and its environment."""

import json
import os
import socket
import subprocess
import tempfile

import tardytest as T

Tardyd = T.CheckedTardyd


def ctl(args, api=None, env=None, token=None, expect=0):
    e = {k: v for k, v in os.environ.items()
         if k not in ("TARDY_API", "TARDY_API_TOKEN")}
    if api is not None:
        e["TARDY_API"] = api
    if token is not None:
        e["TARDY_API_TOKEN"] = token
    if env:
        e.update(env)
    r = subprocess.run([T.TARDYCTL] + list(args), capture_output=True,
                       text=True, env=e, timeout=20 * T.SLOW)
    if expect is not None:
        T.expect(r.returncode == expect,
                 "tardyctl %s: exit %d, expected %d\nstdout: %s\nstderr: %s"
                 % (" ".join(args), r.returncode, expect, r.stdout,
                    r.stderr))
    return r


def dead_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "127.0.0.1:%d" % port


def table(text):
    """Rows of an aligned table, split on runs of two or more spaces."""
    import re
    return [re.split(r"\s{2,}", line.strip())
            for line in text.splitlines() if line.strip()]


def test_version():
    with Tardyd() as d:
        r = ctl(["version"], api=d.ready["api"])
        ver = subprocess.run([T.TARDYD, "-V"], capture_output=True,
                             text=True).stdout.split()[-1]
        T.expect("server: %s" % ver in r.stdout and
                 "client: tardyctl %s" % ver in r.stdout, r.stdout)
        r = ctl(["--json", "version"], api=d.ready["api"])
        T.expect(json.loads(r.stdout) == {"version": ver}, r.stdout)
        r = ctl(["-V"])
        T.expect(r.stdout.strip() == "tardyctl %s" % ver, r.stdout)


def test_create_show_list_delete():
    with Tardyd() as d, T.echo_server() as echo:
        api = d.ready["api"]
        r = ctl(["create", "web", "--upstream", echo.spec], api=api)
        st, p = d.api("GET", "/proxies/web")
        T.expect(st == 200 and p["upstream"] == echo.spec, "%r" % p)
        # The resolved port is printed.
        T.expect("listen:    %s" % p["listen"] in r.stdout, r.stdout)
        with T.connect(T.parse_addr(p["listen"])) as s:
            s.sendall(b"hi")
            T.expect(T.recv_exactly(s, 2) == b"hi", "no echo")

        r = ctl(["create", "off", "-u", echo.spec, "-l", "127.0.0.1:0",
                 "--disabled", "--json"], api=api)
        off = json.loads(r.stdout)
        T.expect(off["enabled"] is False and off["name"] == "off", r.stdout)

        r = ctl(["list"], api=api)
        rows = table(r.stdout)
        T.expect(rows[0] == ["NAME", "LISTEN", "UPSTREAM", "ENABLED",
                             "TOXICS"], "header %r" % rows[0])
        T.expect(rows[1] == ["off", off["listen"], echo.spec, "no", "-"] and
                 rows[2] == ["web", p["listen"], echo.spec, "yes", "-"],
                 "rows %r" % rows)
        r = ctl(["list", "--json"], api=api)
        T.expect(json.loads(r.stdout) == d.api("GET", "/proxies")[1],
                 "--json list differs from the API")

        r = ctl(["show", "web"], api=api)
        T.expect("name:      web" in r.stdout and
                 "enabled:   yes" in r.stdout and
                 "toxics:    none" in r.stdout, r.stdout)
        r = ctl(["--json", "show", "web"], api=api)
        T.expect(json.loads(r.stdout) == p, r.stdout)

        # The choice of what a client sees when the upstream is down.
        r = ctl(["create", "rst", "-u", echo.spec, "--upstream-failure",
                 "reset"], api=api)
        T.expect("upstream failure: reset" in r.stdout, r.stdout)
        T.expect(d.api("GET", "/proxies/rst")[1]["upstream_failure"] ==
                 "reset", "not set through the API")
        r = ctl(["create", "bad", "-u", echo.spec, "--upstream-failure",
                 "drop"], api=api, expect=1)
        T.expect("upstream_failure" in r.stderr, r.stderr)

        r = ctl(["delete", "web"], api=api)
        T.expect(r.stdout == "", "delete printed %r" % r.stdout)
        T.expect(d.api("GET", "/proxies/web")[0] == 404, "not deleted")


def test_enable_disable_reset():
    with Tardyd() as d, T.echo_server() as echo:
        api = d.ready["api"]
        ctl(["create", "p", "-u", echo.spec], api=api)
        ctl(["disable", "p"], api=api)
        T.expect(d.api("GET", "/proxies/p")[1]["enabled"] is False,
                 "still enabled")
        ctl(["enable", "p"], api=api)
        T.expect(d.api("GET", "/proxies/p")[1]["enabled"] is True,
                 "still disabled")
        ctl(["disable", "p"], api=api)
        ctl(["toxic", "add", "p", "--type", "noop"], api=api)
        r = ctl(["reset"], api=api)
        T.expect(r.stdout == "", "reset printed %r" % r.stdout)
        p = d.api("GET", "/proxies/p")[1]
        T.expect(p["enabled"] is True and p["toxics"] == [], "%r" % p)


def test_toxics():
    with Tardyd() as d, T.echo_server() as echo:
        api = d.ready["api"]
        ctl(["create", "p", "-u", echo.spec], api=api)
        r = ctl(["toxic", "add", "p", "--type", "latency", "--attr",
                 "latency=100", "-A", "jitter=5", "--stream", "upstream",
                 "--toxicity", "0.5", "--name", "lat"], api=api)
        rows = table(r.stdout)
        T.expect(rows == [["NAME", "TYPE", "STREAM", "TOXICITY",
                           "ATTRIBUTES"],
                          ["lat", "latency", "upstream", "0.5",
                           "latency=100 jitter=5"]], "add: %r" % rows)
        st, t = d.api("GET", "/proxies/p/toxics/lat")
        # The integers went as JSON integers (the server refuses reals).
        T.expect(t["attributes"] == {"latency": 100, "jitter": 5} and
                 t["toxicity"] == 0.5 and t["stream"] == "upstream",
                 "%r" % t)

        r = ctl(["--json", "toxic", "add", "p", "-T", "noop"], api=api)
        T.expect(json.loads(r.stdout)["name"] == "noop_downstream",
                 r.stdout)

        r = ctl(["toxic", "update", "p", "lat", "-A", "latency=200"],
                api=api)
        st, t = d.api("GET", "/proxies/p/toxics/lat")
        T.expect(t["attributes"] == {"latency": 200, "jitter": 5} and
                 t["toxicity"] == 0.5, "update: %r" % t)
        ctl(["toxic", "update", "p", "lat", "--toxicity", "1"], api=api)
        T.expect(d.api("GET", "/proxies/p/toxics/lat")[1]["toxicity"] == 1,
                 "toxicity not updated")

        r = ctl(["toxic", "list", "p"], api=api)
        names = [row[0] for row in table(r.stdout)[1:]]
        T.expect(names == ["lat", "noop_downstream"], "list %r" % names)
        r = ctl(["--json", "toxic", "list", "p"], api=api)
        T.expect(json.loads(r.stdout) ==
                 d.api("GET", "/proxies/p/toxics")[1], r.stdout)
        r = ctl(["show", "p"], api=api)
        T.expect("lat" in r.stdout and "noop_downstream" in r.stdout,
                 r.stdout)

        ctl(["toxic", "remove", "p", "lat"], api=api)
        T.expect(d.api("GET", "/proxies/p/toxics/lat")[0] == 404,
                 "not removed")


def test_server_errors_exit_1():
    with Tardyd() as d, T.echo_server() as echo:
        api = d.ready["api"]
        ctl(["create", "p", "-u", echo.spec], api=api)
        for args, msg in (
                (["create", "p", "-u", echo.spec], "proxy already exists"),
                (["show", "nope"], "proxy not found"),
                (["delete", "nope"], "proxy not found"),
                (["enable", "nope"], "proxy not found"),
                (["toxic", "add", "p", "-T", "bogus"], "invalid toxic type"),
                (["toxic", "add", "p", "-T", "latency", "-A", "latency=1.5"],
                 "latency"),
                # Not a decimal number: sent as text, refused by name.
                (["toxic", "add", "p", "-T", "latency", "-A", "latency=inf"],
                 "attribute latency must be an integer"),
                (["toxic", "add", "p", "-T", "latency", "-A", "latency=0x10"],
                 "attribute latency must be an integer"),
                (["toxic", "add", "p", "-T", "latency", "-s", "sideways"],
                 "stream was invalid"),
                (["toxic", "remove", "p", "nope"], "toxic not found"),
                (["toxic", "update", "p", "nope", "--toxicity", "1"],
                 "toxic not found"),
                (["toxic", "list", "nope"], "proxy not found"),
                (["create", "q", "-u", "nohostport"], "upstream")):
            r = ctl(args, api=api, expect=1)
            T.expect(r.stderr.startswith("tardyctl: ") and
                     msg in r.stderr and r.stdout == "",
                     "%s: stderr %r" % (args, r.stderr))


def test_unreachable_exit_1():
    addr = dead_port()
    r = ctl(["list"], api=addr, expect=1)
    T.expect("cannot connect to %s" % addr in r.stderr and
             "refused" in r.stderr, r.stderr)


def test_usage_errors_exit_2():
    for args, msg in (
            ([], "no command"),
            (["frobnicate"], "unknown command"),
            (["toxic", "frob", "p"], "unknown command"),
            (["show"], "expected 1 argument"),
            (["delete", "a", "b"], "expected 1 argument"),
            (["toxic", "remove", "p"], "expected 2 arguments"),
            (["create", "p"], "--upstream is required"),
            (["toxic", "add", "p"], "--type is required"),
            (["delete", "p", "--listen", "127.0.0.1:1"],
             "--listen does not apply"),
            # The last option bit was left out of this check.
            (["show", "p", "--upstream-failure", "reset"],
             "--upstream-failure does not apply"),
            (["toxic", "add", "p", "-T", "noop", "--toxicity", "abc"],
             "--toxicity"),
            (["toxic", "add", "p", "-T", "noop", "--toxicity", "nan"],
             "--toxicity"),
            (["toxic", "add", "p", "-T", "noop", "--toxicity", "0x1"],
             "--toxicity"),
            (["toxic", "add", "p", "-T", "noop", "-A", "novalue"],
             "--attr"),
            (["toxic", "add", "p", "-T", "noop", "-A", "=1"], "--attr"),
            (["--bogus-option", "list"], "unknown option"),
            (["-a", "nohostport", "list"], "API address")):
        # Never reaches a server: the API address is a dead port.
        r = ctl(args, api=dead_port(), expect=2)
        T.expect(msg in r.stderr and r.stdout == "",
                 "%s: %r" % (args, r.stderr))


def test_help():
    r = ctl(["--help"])
    T.expect(r.stdout.startswith("usage: tardyctl") and
             "toxic add" in r.stdout and "Exit status" in r.stdout,
             r.stdout)
    for cmd in (["create"], ["toxic", "add"], ["toxic", "update"],
                ["list"], ["reset"]):
        r = ctl(cmd + ["-h"])
        T.expect(r.stdout.startswith("usage: tardyctl") and
                 " ".join(cmd) in r.stdout.splitlines()[0], r.stdout)
        r2 = ctl(["help"] + cmd)
        T.expect(r2.stdout == r.stdout, "help %s differs" % cmd)
    r = ctl(["toxic", "add", "-h"])
    T.expect("--attr KEY=VALUE" in r.stdout and "latency" in r.stdout,
             r.stdout)


def test_api_address_sources():
    with Tardyd() as d:
        live = d.ready["api"]
        dead = dead_port()
        # TARDY_API is used when there is no -a ...
        ctl(["version"], api=live)
        ctl(["version"], api=dead, expect=1)
        # ... and -a wins over it, also written as a URL.
        ctl(["-a", live, "version"], api=dead)
        ctl(["version", "--api", "http://%s/" % live], api=dead)


def test_token():
    env = dict(os.environ, TARDY_API_TOKEN="tok")
    with Tardyd(env=env) as d:
        api = d.ready["api"]
        r = ctl(["list"], api=api, expect=1)
        T.expect("token" in r.stderr, r.stderr)
        ctl(["list"], api=api, token="tok")
        ctl(["-t", "tok", "list"], api=api)
        ctl(["-t", "bad", "list"], api=api, token="tok", expect=1)


def test_unix_socket_api():
    tmp = tempfile.mkdtemp(prefix="tardytest.")
    path = os.path.join(tmp, "api.sock")
    try:
        with Tardyd(args=["-a", "unix:" + path]) as d, \
                T.echo_server() as echo:
            ctl(["-a", "unix:" + path, "create", "u", "-u", echo.spec])
            r = ctl(["--json", "list"], api="unix:" + path)
            T.expect(list(json.loads(r.stdout)) == ["u"], r.stdout)
    finally:
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(tmp)


def test_names_are_escaped():
    with Tardyd() as d, T.echo_server() as echo:
        api = d.ready["api"]
        ctl(["create", "a.b~c-d_e", "-u", echo.spec], api=api)
        r = ctl(["show", "a.b~c-d_e"], api=api)
        T.expect("name:      a.b~c-d_e" in r.stdout, r.stdout)
        # '?' and '#' must not end the path.
        r = ctl(["show", "x?y#z"], api=api, expect=1)
        T.expect("proxy not found" in r.stderr, r.stderr)


T.main(globals())

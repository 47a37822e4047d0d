"""Who may drive the API (src/api_auth.c, doc/api.md "Who may ask"):
the Host check against DNS rebinding, the refusal of cross-site browser
requests (Origin, Sec-Fetch-Site), the directories API requests may use
for unix sockets, and the peer credentials of a unix-socket API. Real
HTTP requests, written byte for byte where a header must be exact."""

import grp
import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile

import tardytest as T


Tardyd = T.CheckedTardyd
NOBODY = 65534


# --- helpers --------------------------------------------------------------

def request(addr, method="GET", path="/version", headers=(), body=None,
            version="HTTP/1.1", host=None):
    """One request written as is; host None: "Host: 127.0.0.1" (a
    loopback client), "" : no Host line at all. Returns (status, JSON or
    text)."""
    lines = ["%s %s %s" % (method, path, version)]
    if host is None:
        host = "127.0.0.1"
    if host != "":
        lines.append("Host: " + host)
    lines += ["User-Agent: tardytest", "Connection: close"]
    lines += list(headers)
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        lines += ["Content-Type: application/json",
                  "Content-Length: %d" % len(data)]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + data
    s = T.connect(addr, 5 * T.SLOW)
    s.sendall(raw)
    buf = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        buf += d
    s.close()
    head, _, payload = buf.partition(b"\r\n\r\n")
    status = int(head.split(b"\r\n")[0].split()[1])
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, payload.decode(errors="replace")


def api_addr(d):
    return T.parse_addr(d.ready["api"])


def port(d):
    return d.ready["api"].rsplit(":", 1)[1]


def expect_refused(reply, status, *words):
    st, body = reply
    T.expect(st == status and isinstance(body, dict) and
             body.get("status") == status and
             all(w in body.get("error", "") for w in words),
             "expected %d naming %r, got %d %r" % (status, words, st, body))


def expect_ok(reply, what, status=200):
    T.expect(reply[0] == status, "%s: %d %r" % (what, reply[0], reply[1]))
    return reply[1]


def local_address():
    """An IPv4 address of this machine that is not loopback, or None."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True,
                             text=True, timeout=5).stdout
    except OSError:
        return None
    for a in out.split():
        if "." in a and not a.startswith("127."):
            return a
    return None


def no_unix_dirs():
    """tardyd's environment with no directory for API unix sockets."""
    env = dict(os.environ)
    env["TARDY_UNIX_DIRS"] = ""
    env.pop("RUNTIME_DIRECTORY", None)
    return env


# --- Host -----------------------------------------------------------------

def test_foreign_host_refused():
    # A page at http://evil.example:PORT/ whose name was rebound to
    # 127.0.0.1 is same-origin to the browser: only its Host tells.
    with Tardyd() as d:
        a, p = api_addr(d), port(d)
        for host in ("evil.example:" + p, "evil.example", "x",
                     "127.0.0.1.evil.example:" + p, "localhost.evil:" + p,
                     "10.1.2.3:" + p, "[::2]:" + p, "::1", "a b"):
            expect_refused(request(a, host=host), 403, "host not allowed",
                           host)
        # Every method and endpoint, before anything is done.
        expect_refused(request(a, "POST", "/proxies", host="evil.example",
                               body={"name": "x", "upstream": "1.2.3.4:1"}),
                       403, "evil.example")
        T.expect(request(a, path="/proxies")[1] == {}, "a proxy was made")
        # An absolute request URI names the host too.
        expect_refused(request(a, path="http://evil.example/version"), 403,
                       "evil.example")
        # Two Host headers: refused, whichever the checker would read.
        expect_refused(request(a, headers=["Host: evil.example"]), 403,
                       "more than one Host")


def test_loopback_hosts_allowed():
    with Tardyd() as d:
        a, p = api_addr(d), port(d)
        for host in ("127.0.0.1:" + p, "127.0.0.1", "localhost:" + p,
                     "LOCALHOST:" + p, "localhost.:" + p,
                     "tardy.localhost:" + p, "127.8.9.10:" + p,
                     "[::1]:" + p, "[::1]", "0.0.0.0:" + p):
            expect_ok(request(a, host=host), host)
        # No Host (HTTP/1.0) or an empty one: not from a browser.
        expect_ok(request(a, host="", version="HTTP/1.0"), "no Host")
        expect_ok(request(a, headers=["Host:"], host=""), "empty Host")
        # A path that starts with // is a path, not a host.
        expect_refused(request(a, path="//version"), 404, "not found")


def test_api_hosts_are_allowed_and_follow_reload():
    conf = "[tardy]\napi_hosts = tardy.test, 10.9.8.7, [fd00::7]\n"
    with Tardyd(conf) as d:
        a = api_addr(d)
        for host in ("tardy.test:1", "TARDY.TEST.", "10.9.8.7",
                     "[fd00::7]:8474", "localhost"):
            expect_ok(request(a, host=host), host)
        expect_refused(request(a, host="other.test"), 403, "other.test")
        d.write_config("[tardy]\napi_hosts = other.test\n")
        d.reload()
        expect_refused(request(a, host="tardy.test"), 403, "tardy.test")
        expect_ok(request(a, host="other.test"), "other.test after reload")


def test_token_replaces_the_host_check():
    # A rebound page cannot know the token: with one, the Host is free.
    env = dict(os.environ, TARDY_API_TOKEN="s3cret")
    with Tardyd(env=env) as d:
        a = api_addr(d)
        good = ["Authorization: Bearer s3cret"]
        expect_ok(request(a, host="tardy.example.com:8474", headers=good),
                  "token, any Host")
        expect_refused(request(a, host="tardy.example.com"), 401, "token")
        # The browser checks still apply with a token.
        expect_refused(request(a, headers=good + [
            "Origin: http://evil.example"]), 403, "origin")


def test_open_api_off_loopback():
    # As Toxiproxy's image (-host=0.0.0.0): reached by names tardy cannot
    # know (a compose service, a Kubernetes Service, a Docker host), so
    # the Host is not checked until api_hosts says what the names are.
    with Tardyd(args=["-a", "0.0.0.0:0", "--api-open"]) as d:
        a = (socket.AF_INET, ("127.0.0.1", int(port(d))))
        expect_ok(request(a, host="toxiproxy:8474"), "service name")
        expect_ok(request(a, host="127.0.0.1:" + port(d)), "loopback")
        # Browsers are still kept out.
        expect_refused(request(a, headers=["Origin: http://evil.example"]),
                       403, "origin")
    local = local_address()
    conf = "[tardy]\napi = 0.0.0.0:0\napi_open = yes\napi_hosts = tardy.test\n"
    with Tardyd(conf, args=["-a", "0.0.0.0:0"]) as d:
        a = (socket.AF_INET, ("127.0.0.1", int(port(d))))
        expect_ok(request(a, host="tardy.test:8474"), "api_hosts name")
        expect_refused(request(a, host="toxiproxy:8474"), 403, "toxiproxy")
        if local is None:
            print("# no non-loopback IPv4 address: the kubelet case skipped")
            return
        # The kubelet's probes: Host is the pod's address, which is the
        # address the probe connected to.
        b = (socket.AF_INET, (local, int(port(d))))
        expect_ok(request(b, host="%s:%s" % (local, port(d))),
                  "Host = the address connected to")
        expect_refused(request(a, host="%s:%s" % (local, port(d))), 403,
                       local)


# --- browsers -------------------------------------------------------------

def test_cross_site_origin_refused():
    with Tardyd() as d:
        a, p = api_addr(d), port(d)
        for origin in ("http://evil.example", "https://evil.example:8474",
                       "http://evil.example:%s" % p, "null",
                       "http://127.0.0.1.evil.example", "file://",
                       "http://127.0.0.1@evil.example",
                       "chrome-extension://abc"):
            expect_refused(request(a, "POST", "/proxies", body={
                "name": "x", "upstream": "127.0.0.1:1"},
                headers=["Origin: " + origin]), 403, "origin not allowed")
        T.expect(request(a, path="/proxies")[1] == {}, "a proxy was made")
        for origin in ("http://localhost:3000", "http://127.0.0.1:%s" % p,
                       "https://localhost", "http://[::1]:%s" % p,
                       "http://app.localhost:8080"):
            expect_ok(request(a, headers=["Origin: " + origin]), origin)


def test_sec_fetch_site_refused():
    with Tardyd() as d:
        a = api_addr(d)
        for site in ("cross-site", "same-site", "something"):
            expect_refused(request(a, "DELETE", "/proxies/x", headers=[
                "Sec-Fetch-Site: " + site]), 403, "Sec-Fetch-Site", site)
        for site in ("same-origin", "none"):
            expect_ok(request(a, headers=["Sec-Fetch-Site: " + site]), site)


def test_browser_user_agent_still_refused():
    with Tardyd() as d:
        st, body = T.http("GET", d.api_url + "/version", headers={
            "User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"})
        T.expect(st == 403 and body == {"error": "User agent not allowed",
                                        "status": 403}, "%d %r" % (st, body))


# --- unix paths -----------------------------------------------------------

def test_unix_paths_outside_allowed_dirs_refused():
    # docker.sock, an ssh agent: nothing outside the allowed directories.
    with Tardyd(env=no_unix_dirs()) as d, T.echo_server() as echo:
        a = api_addr(d)
        sock = os.path.join(d.dir, "p.sock")
        expect_refused(request(a, "POST", "/proxies", body={
            "name": "u", "upstream": echo.spec, "listen": "unix:" + sock}),
            403, "listen", sock, "no directory")
        expect_refused(request(a, "POST", "/proxies", body={
            "name": "u", "upstream": "unix:/var/run/docker.sock"}),
            403, "upstream", "/var/run/docker.sock")
        T.expect(not os.path.exists(sock), "socket made")
        T.expect(request(a, path="/proxies")[1] == {}, "a proxy was made")


def test_unix_dirs_inside_allowed():
    tmp = tempfile.mkdtemp(prefix="tardy-unix-dirs.")
    allowed = os.path.join(tmp, "allowed")
    outside = os.path.join(tmp, "outside")
    os.mkdir(allowed)
    os.mkdir(outside)
    os.symlink(outside, os.path.join(allowed, "escape"))
    up = os.path.join(allowed, "up.sock")
    out_sock = os.path.join(outside, "up.sock")
    try:
        conf = ("[tardy]\nunix_dirs = /nonexistent, %s\n"
                "[proxy f]\nlisten = 127.0.0.1:0\nupstream = unix:%s\n"
                % (allowed, out_sock))
        with Tardyd(conf, env=no_unix_dirs()) as d, \
                T.echo_server(family=socket.AF_UNIX, path=up) as echo, \
                T.echo_server(family=socket.AF_UNIX, path=out_sock):
            a = api_addr(d)
            listen = os.path.join(allowed, "sub", "..", "l.sock")
            expect_refused(request(a, "POST", "/proxies", body={
                "name": "u", "upstream": echo.spec,
                "listen": "unix:" + listen}), 403, "listen", '".."')
            for bad in (os.path.join(allowed, "escape", "l.sock"),
                        out_sock, allowed + "x/l.sock", allowed):
                expect_refused(request(a, "POST", "/proxies", body={
                    "name": "u", "upstream": echo.spec,
                    "listen": "unix:" + bad}), 403, "listen", "outside",
                    allowed)
            expect_refused(request(a, "POST", "/populate", body=[{
                "name": "u", "upstream": "unix:" + out_sock}]), 403,
                "upstream at proxy 1", out_sock)
            listen = os.path.join(allowed, "l.sock")
            p = expect_ok(request(a, "POST", "/proxies", body={
                "name": "u", "upstream": echo.spec,
                "listen": "unix:" + listen}), "inside", 201)
            T.expect(p["listen"] == "unix:" + listen, "%r" % p)
            with T.connect((socket.AF_UNIX, listen)) as s:
                s.sendall(b"ping")
                T.expect(T.recv_exactly(s, 4) == b"ping", "no echo")
            # Changing an address: checked; resending one: not.
            expect_refused(request(a, "POST", "/proxies/u", body={
                "upstream": "unix:" + out_sock}), 403, "upstream")
            expect_refused(request(a, "PATCH", "/proxies/u", body={
                "listen": "unix:" + os.path.join(outside, "l.sock")}), 403,
                "listen")
            f = expect_ok(request(a, "POST", "/proxies/f", body={
                "listen": d.ready["proxies"]["f"], "enabled": False,
                "upstream": "unix:" + out_sock}), "file's own upstream")
            T.expect(f["enabled"] is False, "%r" % f)
            expect_ok(request(a, "POST", "/populate", body=[{
                "name": "f", "listen": d.ready["proxies"]["f"],
                "upstream": "unix:" + out_sock}]), "populate as is", 201)
            # A dangling link would be followed once its target exists.
            os.symlink(os.path.join(outside, "later.sock"),
                       os.path.join(allowed, "dangling.sock"))
            expect_refused(request(a, "POST", "/proxies", body={
                "name": "v", "upstream": "unix:" + os.path.join(
                    allowed, "dangling.sock")}), 403, "upstream",
                "symbolic link")
            # An upstream that does not exist yet, in an allowed place.
            expect_ok(request(a, "POST", "/proxies", body={
                "name": "w", "upstream": "unix:" + os.path.join(
                    allowed, "new", "later.sock")}), "later", 201)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_unix_dirs_from_the_environment_and_the_api_socket():
    tmp = tempfile.mkdtemp(prefix="tardy-unix-env.")
    env_dir = os.path.join(tmp, "env")
    run_dir = os.path.join(tmp, "run")
    api_dir = os.path.join(tmp, "api")
    for x in (env_dir, run_dir, api_dir):
        os.mkdir(x, 0o700)
    env = no_unix_dirs()
    env["TARDY_UNIX_DIRS"] = "relative:" + env_dir
    env["RUNTIME_DIRECTORY"] = run_dir
    try:
        with Tardyd(args=["-a", "unix:" + os.path.join(api_dir, "api.sock")],
                    env=env) as d, T.echo_server() as echo:
            a = api_addr(d)
            for i, where in enumerate((env_dir, run_dir, api_dir)):
                path = os.path.join(where, "p.sock")
                expect_ok(request(a, "POST", "/proxies", body={
                    "name": "p%d" % i, "upstream": echo.spec,
                    "listen": "unix:" + path}), where, 201)
            expect_refused(request(a, "POST", "/proxies", body={
                "name": "q", "upstream": echo.spec,
                "listen": "unix:" + os.path.join(tmp, "q.sock")}), 403,
                "listen", env_dir, run_dir, api_dir)
        # The API socket's directory counts only if no one else can
        # write there.
        os.chmod(api_dir, 0o777)
        with Tardyd(args=["-a", "unix:" + os.path.join(api_dir, "api.sock")],
                    env=no_unix_dirs()) as d, T.echo_server() as echo:
            expect_refused(request(api_addr(d), "POST", "/proxies", body={
                "name": "p", "upstream": echo.spec,
                "listen": "unix:" + os.path.join(api_dir, "p.sock")}), 403,
                "listen", "no directory")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- a unix-socket API's peers --------------------------------------------

def as_user(uid, gid, groups, addr):
    """request(addr) from a forked child running as uid:gid with groups;
    its (status, body), or the exception it met, as a string."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
            out = json.dumps(list(request(addr)))
        except BaseException as e:
            out = json.dumps("%s: %s" % (type(e).__name__, e))
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


def peer_lab():
    """A directory nobody may traverse to a socket in it, and a group
    to use as api_group; skips without root."""
    if os.geteuid() != 0:
        T.skip("needs root, to run a client as another user")
    group = next((g for g in grp.getgrall()
                  if g.gr_gid not in (0, NOBODY, os.getegid())), None)
    if group is None:
        T.skip("no group to use as api_group")
    tmp = tempfile.mkdtemp(prefix="tardy-peer.")
    os.chmod(tmp, 0o711)
    return tmp, os.path.join(tmp, "api.sock"), group


def test_unix_api_refuses_other_users():
    tmp, path, group = peer_lab()
    addr = (socket.AF_UNIX, path)
    try:
        with Tardyd(args=["-a", "unix:" + path]) as d:
            expect_ok(request(addr), "tardyd's own user")
            # The socket's mode is not what keeps others out: an admin
            # or a volume mount may open it up.
            os.chmod(path, 0o666)
            r = as_user(NOBODY, NOBODY, [group.gr_gid], addr)
            T.expect(isinstance(r, list), "other user: %r" % (r,))
            expect_refused(tuple(r), 403, "uid %d" % NOBODY, "api_group")
            expect_ok(request(addr), "tardyd's own user")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_unix_api_group_members():
    tmp, path, group = peer_lab()
    addr = (socket.AF_UNIX, path)
    try:
        conf = "[tardy]\napi = unix:%s\napi_group = %s\n" % (
            path, group.gr_name)
        with Tardyd(conf, args=["-a", "unix:" + path]) as d:
            st = os.stat(path)
            T.expect(st.st_gid == group.gr_gid and
                     stat.S_IMODE(st.st_mode) == 0o660,
                     "socket %o group %d" % (st.st_mode, st.st_gid))
            expect_ok(request(addr), "tardyd's own user")
            # A member of api_group (a supplementary group) may ask.
            r = as_user(NOBODY, NOBODY, [group.gr_gid], addr)
            T.expect(isinstance(r, list) and r[0] == 200,
                     "member of %s: %r" % (group.gr_name, r))
            # Anyone else may not, even when the socket's mode lets
            # them connect.
            os.chmod(path, 0o666)
            r = as_user(NOBODY, NOBODY, [], addr)
            T.expect(isinstance(r, list), "non-member: %r" % (r,))
            expect_refused(tuple(r), 403, "uid %d" % NOBODY, group.gr_name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- configuration --------------------------------------------------------

def test_config_errors():
    tmp = tempfile.mkdtemp(prefix="tardytest.")
    path = os.path.join(tmp, "tardy.conf")
    cases = [
        ("api_hosts = a b\n", ':2: api_hosts: "a b": not a host name'),
        ("api_hosts = tardy.test:8474\n", "tardy.test:8474"),
        ("api_hosts = ok.test, , x\n", ":2: api_hosts: empty entry"),
        ("unix_dirs = run/tardy\n", ':2: unix_dirs: "run/tardy": not an '
         "absolute path"),
        ("api = unix:/tmp/x.sock\napi_group = no-such-group-tardy\n",
         ':3: api_group: no group "no-such-group-tardy"'),
        ("api_group = 0\n", "needs a unix: api"),
    ]
    try:
        for text, want in cases:
            with open(path, "w") as f:
                f.write("[tardy]\n" + text)
            r = subprocess.run([T.TARDYD, "-t", "-c", path],
                               capture_output=True, text=True, timeout=10)
            T.expect(r.returncode == 1 and want in r.stderr,
                     "%r: %d %s" % (text, r.returncode, r.stderr))
        with open(path, "w") as f:
            f.write("[tardy]\napi = unix:/tmp/x.sock\napi_group = 0\n"
                    "api_hosts = tardy.test, 10.0.0.1, [::2], ::3\n"
                    "unix_dirs = /run/tardy, /tmp/tardy-tests\n")
        r = subprocess.run([T.TARDYD, "-t", "-c", path],
                           capture_output=True, text=True, timeout=10)
        T.expect(r.returncode == 0, r.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    T.main(globals())

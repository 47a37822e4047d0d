"""The shipped systemd unit under a real systemd, driven as an admin would.

This machine's PID 1 is not systemd, so the test boots one: a minimal
Debian rootfs (mmdebstrap from Debian's mirrors, cached as a tarball keyed
by its package list, see rootfs_tarball) runs /lib/systemd/systemd as
PID 1 in a private podman (tests/podmanlab.py), with --cap-add SYS_ADMIN
for the unit's namespaces and no network but loopback. tardy goes in
with `make install DESTDIR=...` from this build tree, then
`systemctl daemon-reload`, and the unit is driven with systemctl,
tardyctl, curl and the clients of tests/systemd_probe.py, all inside the
container:

- `systemctl start` returns after READY=1, with a status line;
- the API answers;
- every toxic type acts through a proxy under the sandbox, with no EPERM,
  and again with `SystemCallErrorNumber=kill` in a drop-in, so a call the
  filter refuses would kill the daemon (SIGSYS);
- `systemctl reload` succeeds for a good file, fails for a broken one, and
  fails, with the daemon's reason, for one the daemon cannot apply;
- `systemctl restart` after tardyctl and HTTP/1.0 clients succeeds;
- `systemctl stop` with open and stalled connections is clean and quick;
- `systemd-analyze security` rates the unit 2.0 or better.

If podman or mmdebstrap cannot run, the tests fail saying why: they never
skip.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import tardytest as T
from tardytest import expect, now
from podmanlab import PodmanLab

BUILDDIR = os.path.dirname(os.path.abspath(T.TARDYD))
PROBE = os.path.join(T.TOP_SRCDIR, "tests", "systemd_probe.py")
PROBE_IN = "/opt/tardy-test/systemd_probe.py"

# What the rootfs holds beyond minbase: systemd as init, what the checks
# run (curl, ps, python3 for systemd_probe.py), and the libraries the
# built tardyd and tardyctl link, found with ldd and dpkg -S (so an
# ASan build brings its runtime).
BASE_PACKAGES = ["systemd", "systemd-sysv", "dbus", "curl", "procps",
                 "python3-minimal"]
DPKG_EXCLUDES = ["/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*",
                 "/usr/share/locale/*"]
INSTALL = "apt-get install -y podman runc catatonit mmdebstrap"

# Ports inside the container (its own network namespace: no clash with
# the host or other tests).
ECHO_TCP, ECHO_UDP, PROXY_TCP, PROXY_UDP, HELD = 7000, 7010, 7001, 7011, 7020
LAB_PROXIES = ("\n# Added by test_systemd_unit.py\n"
               "[proxy p]\nlisten = 127.0.0.1:%d\nupstream = 127.0.0.1:%d\n"
               "[proxy u]\nprotocol = udp\nlisten = 127.0.0.1:%d\n"
               "upstream = 127.0.0.1:%d\n" % (PROXY_TCP, ECHO_TCP,
                                              PROXY_UDP, ECHO_UDP))
BAD_WORDS = re.compile(r"Operation not permitted|EPERM|SIGSYS|status=31|"
                       r"Bad system call|Permission denied|core-dump",
                       re.I)


class Lab:
    """The booted container and what the tests learnt about it."""
    podman = None
    cid = None
    conf = None             # the installed tardy.conf's path
    shipped = None          # its text as installed
    path = ""               # where tardyd and tardyctl were installed
    timings = []
    t0 = None


LAB = Lab()


def timing(what, seconds):
    LAB.timings.append((what, seconds))
    print("# %s: %.1f s" % (what, seconds))


# --- the rootfs --------------------------------------------------------------

def cache_dir():
    d = os.environ.get("TARDY_TEST_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or
        os.path.join(os.path.expanduser("~"), ".cache"), "tardy-test")
    os.makedirs(d, exist_ok=True)
    return d


def runtime_packages():
    """The Debian packages holding the libraries tardyd and tardyctl
    link."""
    libs = set()
    for exe in (T.TARDYD, T.TARDYCTL):
        r = subprocess.run(["ldd", exe], capture_output=True, text=True)
        expect(r.returncode == 0, "ldd %s: %s" % (exe, r.stderr))
        libs.update(re.findall(r"=> (/\S+)", r.stdout))
    pkgs = set()
    for lib in sorted(libs):
        r = subprocess.run(["dpkg", "-S", os.path.realpath(lib)],
                           capture_output=True, text=True)
        if r.returncode != 0:           # merged /usr: ask for both names
            alt = re.sub(r"^/usr/lib/", "/lib/", os.path.realpath(lib))
            r = subprocess.run(["dpkg", "-S", alt], capture_output=True,
                               text=True)
        expect(r.returncode == 0, "no Debian package holds %s (%s): the "
               "rootfs cannot be made for this build" % (lib, r.stderr))
        pkgs.add(r.stdout.split(":")[0])
    return sorted(pkgs)


def prune_cache(days=30):
    """Forget rootfs tarballs unused for days (another package list, such
    as an old build's), and what crashed runs left half made."""
    d = cache_dir()
    for f in os.listdir(d):
        p = os.path.join(d, f)
        age = time.time() - os.path.getmtime(p)
        if f.startswith("systemd-rootfs-") and (
                age > days * 86400 or (f.endswith(".tmp.tar") and
                                       age > 3600)):
            try:
                os.unlink(p)
            except OSError:
                pass


def debian_suite():
    with open("/etc/os-release") as f:
        rel = dict(l.rstrip("\n").split("=", 1) for l in f if "=" in l)
    codename = rel.get("VERSION_CODENAME", "").strip('"')
    expect(rel.get("ID") == "debian" and codename,
           "the rootfs is made with Debian's packages for this host's "
           "release; this host is %r" % rel.get("PRETTY_NAME"))
    return codename


def rootfs_tarball():
    """The rootfs tarball, built with mmdebstrap unless the cache has
    one for the same suite and packages. Returns (path, seconds spent)."""
    suite = debian_suite()
    pkgs = sorted(set(BASE_PACKAGES + runtime_packages()))
    mirrors = ["deb http://deb.debian.org/debian %s main" % suite,
               "deb http://deb.debian.org/debian %s-updates main" % suite,
               "deb http://deb.debian.org/debian-security %s-security main"
               % suite]
    key = hashlib.sha256("\n".join(
        [suite, os.uname().machine, "minbase"] + pkgs + mirrors +
        DPKG_EXCLUDES).encode()).hexdigest()[:16]
    path = os.path.join(cache_dir(), "systemd-rootfs-%s.tar" % key)
    print("# rootfs %s: %s" % (os.path.basename(path), " ".join(pkgs)))
    if os.path.exists(path):
        os.utime(path)          # in use: not pruned
        return path, 0.0
    prune_cache()
    if shutil.which("mmdebstrap") is None:
        raise AssertionError("mmdebstrap is not installed: " + INSTALL)
    tmp = "%s.%d.tmp.tar" % (path[:-4], os.getpid())   # mmdebstrap: .tar
    t0 = now()
    argv = ["mmdebstrap", "--quiet", "--variant=minbase",
            "--include=" + ",".join(pkgs)]
    argv += ["--dpkgopt=path-exclude=" + x for x in DPKG_EXCLUDES]
    argv += [suite, tmp] + mirrors
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise AssertionError("mmdebstrap exited %d: %s" %
                             (r.returncode, (r.stderr + r.stdout)[-3000:]))
    os.rename(tmp, path)
    return path, now() - t0


# --- running things in the container -----------------------------------------

def sh(cmd, check=True, input=None, timeout=60):
    """`sh -c cmd` in the container; the CompletedProcess. With check, a
    non-zero exit fails the test with the output."""
    expect(LAB.cid is not None, "no container: the boot test failed")
    if LAB.path:
        cmd = "PATH=%s:$PATH; export PATH; %s" % (LAB.path, cmd)
    args = ["exec"] + (["-i"] if input is not None else []) + \
        [LAB.cid, "sh", "-c", cmd]
    r = LAB.podman.podman(*args, check=False, input=input, timeout=timeout)
    if check and r.returncode != 0:
        why = ""
        if STARTS.search(cmd):
            why = "\n" + unit_log()
        raise AssertionError("`%s` exited %d: %s%s" % (
            cmd, r.returncode, (r.stdout + r.stderr).strip()[-3000:], why))
    return r


# systemctl's own message ("the control process exited with error code")
# never says why: a failed start, reload or restart shows the unit's log.
STARTS = re.compile(r"systemctl (start|reload|restart|try-restart|"
                    r"reload-or-restart)\b")


def unit_log(lines=50):
    """The end of the unit's journal, for a failure message."""
    try:
        r = LAB.podman.podman("exec", LAB.cid, "journalctl", "-u", "tardyd",
                              "--no-pager", "-n", str(lines), check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "(no journal: %s)" % e
    return "journalctl -u tardyd -n %d:\n%s" % (
        lines, (r.stdout + r.stderr).strip())


def put(path, text):
    sh('mkdir -p "$(dirname "$0")" && cat > "$0.tmp" && mv "$0.tmp" "$0"'
       .replace("$0", path), input=text)


def show(*props):
    r = sh("systemctl show -p %s tardyd" % ",".join(props))
    return dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)


def cursor():
    """Where the journal ends now."""
    r = sh("journalctl -n 1 -o export --no-pager")
    m = re.search(r"^__CURSOR=(.*)$", r.stdout, re.M)
    return m.group(1) if m else None


def journal(after=None, wait_for=None, timeout=3.0):
    """The unit's journal (after a cursor), as plain messages. With
    wait_for (a regex), wait up to timeout for it to appear: stderr
    reaches journald asynchronously."""
    cmd = "journalctl -u tardyd -o cat --no-pager"
    if after:
        cmd += " --after-cursor='%s'" % after
    deadline = now() + timeout
    while True:
        text = sh(cmd).stdout
        if wait_for is None or re.search(wait_for, text) or now() > deadline:
            return text
        time.sleep(0.1)


def expect_clean(text, what):
    bad = [l for l in text.splitlines() if BAD_WORDS.search(l)]
    expect(not bad, "%s: %s" % (what, "\n".join(bad[:10])))


def proxies():
    r = sh("curl -sf http://127.0.0.1:8474/proxies")
    return sorted(json.loads(r.stdout))


def systemctl(cmd, check=False):
    """(exit status, output, seconds) of `systemctl cmd tardyd`; a failed
    start, reload or restart's output ends with the unit's journal."""
    t0 = now()
    r = sh("systemctl %s tardyd" % cmd, check=check)
    took = now() - t0
    out = (r.stdout + r.stderr).strip()
    if r.returncode != 0 and STARTS.search("systemctl " + cmd):
        out += "\n" + unit_log()
    return r.returncode, out, took


def lab_proxies(*extra):
    """The proxies of the shipped file, plus p and u once the lab's are in
    it, plus extra."""
    names = re.findall(r"^\[proxy (\S+)\]", LAB.shipped, re.M)
    return sorted(names + ["p", "u"] + list(extra))


def expect_running(pid=None, what=""):
    s = show("ActiveState", "SubState", "MainPID", "NRestarts", "Result")
    if not (s["ActiveState"] == "active" and s["SubState"] == "running" and
            s["NRestarts"] == "0"):
        raise AssertionError("%s: unit %r\n%s" % (what, s, unit_log()))
    if pid is not None:
        expect(s["MainPID"] == pid, "%s: MainPID %s, was %s" %
               (what, s["MainPID"], pid))
    return s["MainPID"]


# --- the flow ----------------------------------------------------------------

def test_boot_systemd_in_podman():
    LAB.t0 = now()
    expect(os.geteuid() == 0, "needs root: mmdebstrap builds the rootfs "
           "and podman boots systemd with SYS_ADMIN as root here")
    tarball, took = rootfs_tarball()
    timing("rootfs " + ("built with mmdebstrap" if took else "from cache"),
           took)
    LAB.podman = PodmanLab(prefix="tardysd.").__enter__()
    t0 = now()
    rootfs = os.path.join(LAB.podman.dir, "rootfs")
    os.mkdir(rootfs)
    r = subprocess.run(["tar", "-C", rootfs, "-xpf", tarball],
                       capture_output=True, text=True)
    expect(r.returncode == 0, "unpacking %s: %s" % (tarball, r.stderr))
    r = LAB.podman.podman("run", "-d", "--name", "tardy-systemd",
                          "--hostname", "tardy-lab", "--network", "none",
                          "--cap-add", "SYS_ADMIN", "--systemd", "always",
                          "--rootfs", rootfs, "/lib/systemd/systemd")
    LAB.cid = r.stdout.strip()
    # Until systemd answers at all, then until it has booted.
    deadline = now() + 60 * T.SLOW
    while True:
        r = sh("systemctl is-system-running --wait", check=False, timeout=90)
        state = r.stdout.strip()
        if state in ("running", "degraded") or now() > deadline:
            break
        time.sleep(0.1)
    failed = sh("systemctl --failed --no-legend --plain", check=False).stdout
    expect(state in ("running", "degraded"), "systemd is %r: %s %s" %
           (state, r.stderr.strip(), failed))
    version = sh("systemctl --version | head -1").stdout.strip()
    print("# %s, %s as PID 1%s" % (version, state, (": failed " + " ".join(
        l.split()[0] for l in failed.splitlines())) if failed.strip() else
        ""))
    expect(sh("cat /proc/1/comm").stdout.strip() == "systemd", "PID 1")
    timing("boot", now() - t0)


DROPIN_DIR = "/etc/systemd/system/tardyd.service.d"


def sanitized():
    r = subprocess.run(["ldd", T.TARDYD], capture_output=True, text=True)
    return "libasan" in r.stdout


def test_make_install_and_daemon_reload():
    t0 = now()
    stage = os.path.join(LAB.podman.dir, "stage")
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES",
                        "DESTDIR")}
    r = subprocess.run(["make", "-s", "-C", BUILDDIR, "install",
                        "DESTDIR=" + stage], env=env, capture_output=True,
                       text=True, stdin=subprocess.DEVNULL, timeout=300)
    expect(r.returncode == 0, "make install: %s" % (r.stdout +
                                                     r.stderr)[-3000:])
    found = {}
    for d, _, files in os.walk(stage):
        for f in files:
            found.setdefault(f, "/" + os.path.relpath(os.path.join(d, f),
                                                      stage))
    expect("tardyd" in found and "tardyctl" in found,
           "make install installed no tardyd or tardyctl")
    unit = found.get("tardyd.service")
    # Where the admin's shell would find them, whatever the prefix.
    LAB.path = "%s:%s" % (os.path.dirname(found["tardyctl"]),
                          os.path.dirname(found["tardyd"]))
    # Copy in over the rootfs's merged-/usr links, as dpkg would, and
    # leave the directories there as they are (the stage's ./tmp, for a
    # prefix under /tmp, would make the container's /tmp 0755).
    tar = subprocess.Popen(["tar", "-C", stage, "-cf", "-", "."],
                           stdout=subprocess.PIPE)
    r = subprocess.run(["podman", "exec", "-i", LAB.cid, "tar",
                        "--keep-directory-symlink", "--no-overwrite-dir",
                        "-C", "/", "-xf", "-"],
                       env=LAB.podman.env, stdin=tar.stdout,
                       capture_output=True, text=True, timeout=120)
    tar.stdout.close()
    expect(tar.wait() == 0 and r.returncode == 0, "copy in: %s" % r.stderr)
    if unit is None:
        # Configured without a unit directory: the build tree's unit.
        with open(os.path.join(BUILDDIR, "systemd", "tardyd.service")) as f:
            put("/etc/systemd/system/tardyd.service", f.read())
        unit = "/etc/systemd/system/tardyd.service"
    elif not re.match(r"/(usr/)?lib/systemd/system/|/etc/systemd/system/",
                      unit):
        sh("systemctl link %s" % unit)
    with open(PROBE) as f:
        put(PROBE_IN, f.read())
    if sanitized():
        # LeakSanitizer stops the world with ptrace, which the sandbox
        # rightly refuses (it then fails every exit); the rest of the
        # suite checks for leaks.
        put(DROPIN_DIR + "/sanitizer.conf",
            "[Service]\nEnvironment=ASAN_OPTIONS=detect_leaks=0\n")
        print("# AddressSanitizer build: LeakSanitizer off in the unit")
    sh("systemctl daemon-reload")
    s = show("LoadState", "FragmentPath", "ExecStart")
    expect(s["LoadState"] == "loaded", "unit %r" % s)
    m = re.search(r"argv\[\]=(\S+) .*-c (\S+)", s["ExecStart"])
    expect(m, "ExecStart %r" % s["ExecStart"])
    # ProtectHome= and PrivateTmp= hide these from the unit. A prefix
    # there (make distcheck's, in a checkout under /root or /tmp) gets a
    # drop-in that shows the directories of tardyd and its file,
    # read-only, and nothing else: BindReadOnlyPaths= on a private /tmp,
    # or on ProtectHome=tmpfs's empty /home, /root and /run/user (under
    # ProtectHome=yes they cannot be mount points). PrivateTmp=no would
    # not do: DynamicUser= forces PrivateTmp=yes (252 ignores the no, and
    # the unit fails with 203/EXEC, "Failed to locate executable").
    relax, shown = [], []
    for path in (os.path.dirname(m.group(1)), os.path.dirname(m.group(2))):
        for hidden, also in (("/home/", "ProtectHome=tmpfs"),
                             ("/root/", "ProtectHome=tmpfs"),
                             ("/run/user/", "ProtectHome=tmpfs"),
                             ("/tmp/", None), ("/var/tmp/", None)):
            if path.startswith(hidden):
                if also and also not in relax:
                    relax.append(also)
                if path not in shown:
                    shown.append(path)
    if shown:
        relax.append("BindReadOnlyPaths=" + " ".join(shown))
        put(DROPIN_DIR + "/prefix.conf", "[Service]\n%s\n" %
            "\n".join(relax))
        sh("systemctl daemon-reload")
        print("# tardyd installed where the sandbox hides it: %s" %
              ", ".join(relax))
    LAB.conf = m.group(2)
    LAB.shipped = sh("cat %s" % LAB.conf).stdout
    print("# %s runs %s -c %s" % (s["FragmentPath"], m.group(1), LAB.conf))
    timing("install", now() - t0)


def test_start_returns_after_ready_with_status():
    # start, then at once the API: READY must have meant listening.
    t0 = now()
    r = sh("systemctl start tardyd && curl -sf http://127.0.0.1:8474/version"
           " && systemctl show -p StatusText tardyd")
    took = now() - t0
    expect('"version"' in r.stdout, "API right after start: %r" % r.stdout)
    m = re.search(r"^StatusText=(.*)$", r.stdout, re.M)
    expect(m and re.match(r"\d+ prox(y|ies), \d+ connections? open$",
                          m.group(1)), "status line %r" % r.stdout)
    print("# started in %.2f s; status: %s" % (took, m.group(1)))
    s = show("Type", "ActiveState", "SubState")
    expect(s["Type"] == "notify" and s["ActiveState"] == "active" and
           s["SubState"] == "running", "unit %r" % s)
    expect_running()
    # The sandbox is in force: a dynamic user with CAP_NET_BIND_SERVICE
    # only, on a read-only /usr.
    pid = show("MainPID")["MainPID"]
    st = sh("grep -E '^(Uid|CapEff|NoNewPrivs|Seccomp):' /proc/%s/status"
            % pid).stdout
    uid = int(re.search(r"Uid:\s+(\d+)", st).group(1))
    expect(uid >= 61184, "dynamic uid %d" % uid)
    expect(re.search(r"CapEff:\s+0*400\b", st), "capabilities %r" % st)
    expect(re.search(r"Seccomp:\s+2", st), "seccomp filter %r" % st)
    r = sh("awk '$5 == \"/usr\" || $5 == \"/\" { print $5, $6 }' "
           "/proc/%s/mountinfo" % pid)
    expect(r.stdout and all(l.split()[1].startswith("ro") for l in
                            r.stdout.splitlines()),
           "/ or /usr writable: %r" % r.stdout)


def test_api_answers():
    shipped = sorted(set(lab_proxies()) - {"p", "u"})
    r = sh("curl -sf http://127.0.0.1:8474/version && tardyctl list")
    expect(all(n in r.stdout for n in shipped), "tardyctl list: %r" %
           r.stdout)
    expect(proxies() == shipped, "proxies %r, shipped %r" % (proxies(),
                                                             shipped))


def test_reload_good_file():
    pid = expect_running()
    put(LAB.conf, LAB.shipped + LAB_PROXIES)
    status, out, took = systemctl("reload")
    expect(status == 0, "reload of a good file: %d %s" % (status, out))
    expect(proxies() == lab_proxies(), "proxies %r" % proxies())
    expect_running(pid, "after a good reload")
    print("# reloaded in %.2f s" % took)


def test_every_toxic_under_the_sandbox():
    for proto, port in (("tcp", ECHO_TCP), ("udp", ECHO_UDP)):
        sh("systemctl is-active -q lab-echo-%s || systemd-run -q "
           "--unit=lab-echo-%s python3 %s echo %s %d" % (
               proto, proto, PROBE_IN, proto, port))
    run_toxics("SystemCallErrorNumber=EPERM")


def run_toxics(what):
    pid = expect_running()
    mark = cursor()
    r = sh("python3 %s toxics %d %d" % (PROBE_IN, PROXY_TCP, PROXY_UDP),
           check=False, timeout=120)
    for line in r.stdout.splitlines():
        print("# " + line)
    expect(r.returncode == 0, "toxics: %s" % (r.stdout + r.stderr)[-2000:])
    types = {f[6:-2] for f in os.listdir(os.path.join(T.TOP_SRCDIR, "src"))
             if re.match(r"toxic_\w+\.c$", f) and f != "toxic_queue.c"}
    seen = set(re.findall(r"^ok (\w+):", r.stdout, re.M))
    expect(seen == types, "probed %s, tardy has %s" % (sorted(seen),
                                                       sorted(types)))
    expect_running(pid, "after every toxic (%s)" % what)
    expect_clean(journal(mark), "journal (%s)" % what)


def test_reload_broken_file():
    pid = expect_running()
    put(LAB.conf, LAB.shipped + LAB_PROXIES + "[proxy broken\n")
    status, out, _ = systemctl("reload")
    expect(status != 0, "reload of a broken file succeeded: %s" % out)
    expect(proxies() == lab_proxies(), "proxies %r" % proxies())
    expect_running(pid, "after a broken reload")
    text = journal(wait_for=r"tardy\.conf:\d+: ")
    expect(re.search(r"tardy\.conf:\d+: ", text), "no file:line in the "
           "journal: %s" % text[-1000:])
    put(LAB.conf, LAB.shipped + LAB_PROXIES)


def unappliable_reload(what):
    """Reload a file tardyd -t accepts, with a proxy on a port another
    program holds: the reload must fail with the daemon's reason, which
    keeps its running configuration."""
    pid = expect_running()
    before = proxies()
    sh("systemd-run -q --unit=lab-hold python3 %s hold %d" % (PROBE_IN,
                                                               HELD))
    try:
        sh("for i in $(seq 100); do grep -q ':%04X 00000000:0000 0A' "
           "/proc/net/tcp && exit 0; sleep 0.05; done; exit 1" % HELD)
        text = LAB.shipped + LAB_PROXIES + \
            "[proxy b]\nlisten = 127.0.0.1:%d\nupstream = 127.0.0.1:%d\n" % (
                HELD, ECHO_TCP)
        put(LAB.conf, text)
        sh("tardyd -t -c %s" % LAB.conf)
        mark = cursor()
        status, out, _ = systemctl("reload")
        expect(status != 0, "reload of a file the daemon cannot apply "
               "succeeded (%s): %s" % (what, out))
        why = journal(mark, wait_for="kept its running configuration")
        m = re.search(r"^.*reload failed: .*kept its running "
                      r"configuration.*$", why, re.M)
        expect(m and "address already in use" in m.group(0) and
               ":%d" % HELD in m.group(0), "the daemon's reason in the "
               "journal (%s): %s" % (what, why[-1500:]))
        print("# " + m.group(0))
        expect(proxies() == before, "proxies %r" % proxies())
        expect_running(pid, "after a reload it could not apply (%s)" % what)
    finally:
        sh("systemctl stop lab-hold", check=False)
    try:
        # The port free, the same file applies.
        status, out, _ = systemctl("reload")
        expect(status == 0, "the same file once the port is free: %s" %
               out)
        expect(proxies() == sorted(before + ["b"]), "proxies %r" %
               proxies())
    finally:
        put(LAB.conf, LAB.shipped + LAB_PROXIES)
        status, out, _ = systemctl("reload")
    expect(status == 0, "back to the lab file: %s" % out)
    expect(proxies() == before, "proxies %r" % proxies())


def test_reload_file_it_cannot_apply():
    unappliable_reload("SystemCallErrorNumber=EPERM")


def test_restart_after_tardyctl_and_http10():
    expect_running()
    sh("tardyctl list >/dev/null && tardyctl create extra -u 127.0.0.1:%d "
       "-l 127.0.0.1:7030 >/dev/null && tardyctl toxic add p -T latency "
       "-A latency=1 >/dev/null && tardyctl show p >/dev/null && "
       "python3 %s http10 8474 5" % (ECHO_TCP, PROBE_IN))
    # The server closed first: its side waits in TIME_WAIT on the port
    # the new daemon must bind at once (as do proxied connections tardyd
    # closed, such as limit_data's and timeout's).
    waits = sh("grep -c ':%04X [0-9A-F:]* 06' /proc/net/tcp || true" % 8474)
    waits = int(waits.stdout.strip() or 0)
    print("# %d TIME_WAITs on :8474 before the restart" % waits)
    expect(waits > 0, "no TIME_WAIT on the API's port to restart over")
    for i in range(3):
        mark = cursor()
        status, out, took = systemctl("restart")
        expect(status == 0, "restart %d: %s" % (i, out))
        expect_running(what="after restart %d" % i)
        text = journal(mark)
        expect("already in use" not in text, "restart %d: %s" % (i, text))
        expect(proxies() == lab_proxies(), "proxies %r" % proxies())
        print("# restart %d in %.2f s" % (i, took))
        sh("curl -sf --http1.0 http://127.0.0.1:8474/version >/dev/null && "
           "tardyctl list >/dev/null")
    expect(sh("systemctl is-failed tardyd", check=False).stdout.strip() ==
           "active", "unit failed")


def run_stop(what):
    expect_running()
    mark = cursor()
    r = sh("python3 %s stop %d" % (PROBE_IN, PROXY_TCP), check=False,
           timeout=60)
    for line in r.stdout.splitlines():
        print("# " + line)
    expect(r.returncode == 0, "stop with connections (%s): %s" %
           (what, (r.stdout + r.stderr)[-2000:]))
    m = re.search(r"stop exit 0 in ([0-9.]+) s", r.stdout)
    expect(m and float(m.group(1)) < 2.0, "stop took too long: %r" %
           r.stdout)
    s = show("ActiveState", "Result")
    expect(s["ActiveState"] == "inactive" and s["Result"] == "success",
           "after stop (%s): %r" % (what, s))
    # systemd forgets a stopped unit's exit status: its log has it.
    text = journal(mark, wait_for="Stopped")
    expect("Deactivated successfully" in text and
           not re.search(r"timed out|SIGKILL|Killing|Main process exited|"
                         r"Failed with result", text),
           "stop (%s): %s" % (what, text))
    expect_clean(text, "stop (%s)" % what)


def test_stop_with_open_and_stalled_connections():
    run_stop("SystemCallErrorNumber=EPERM")


def test_syscall_filter_with_kill():
    # Control: under this filter with kill, a refused call is fatal.
    r = sh("systemd-run --wait -p SystemCallArchitectures=native "
           "-p SystemCallFilter=@system-service "
           "-p 'SystemCallFilter=~@privileged @resources' "
           "-p SystemCallErrorNumber=kill python3 -c "
           "'import os; os.nice(1)'", check=False)
    expect(r.returncode != 0 and "status=SYS" in r.stdout + r.stderr,
           "setpriority was not killed by the filter: %r" %
           (r.stdout + r.stderr))
    put(DROPIN_DIR + "/syscall-kill.conf",
        "[Service]\nSystemCallErrorNumber=kill\n")
    try:
        sh("systemctl daemon-reload")
        s = show("SystemCallErrorNumber")
        # 252 shows kill as its internal number, INT_MAX - 1.
        expect(s["SystemCallErrorNumber"] in ("kill", "2147483646"),
               "drop-in: %r" % s)
        mark = cursor()
        sh("systemctl start tardyd")
        run_toxics("SystemCallErrorNumber=kill")
        status, out, _ = systemctl("reload")
        expect(status == 0, "reload (kill): %s" % out)
        unappliable_reload("SystemCallErrorNumber=kill")
        sh("curl -sf --http1.0 http://127.0.0.1:8474/version >/dev/null")
        run_stop("SystemCallErrorNumber=kill")
        text = journal(mark)
        expect_clean(text, "journal (kill)")
    finally:
        sh("rm -f %s/syscall-kill.conf && systemctl daemon-reload" %
           DROPIN_DIR, check=False)


def test_security_exposure():
    r = sh("systemd-analyze security tardyd", check=False)
    m = re.search(r"Overall exposure level for tardyd\.service: ([0-9.]+)",
                  r.stdout)
    expect(m, "no exposure level: %s" % (r.stdout + r.stderr)[-1000:])
    level = float(m.group(1))
    print("# exposure %.1f" % level)
    expect(level <= 2.0, "exposure %.1f > 2.0" % level)


def test_whole_journal_clean():
    text = journal()
    expect_clean(text, "tardyd's journal")
    expect(re.search(r"ready: \d+ prox", text), "no start in the journal")
    total = now() - LAB.t0
    timing("whole flow", total)
    print("# " + ", ".join("%s %.1f s" % t for t in LAB.timings))


try:
    T.main(globals(), timeout=300)
finally:
    if LAB.podman is not None:
        LAB.podman.close()

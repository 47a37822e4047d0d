"""The pieces that ship beside the daemon: the systemd unit (verified and
scored by systemd-analyze), the man pages (linted), the example config."""

import os
import re
import shutil
import subprocess
import tempfile

import tardytest as T

BUILDDIR = os.path.dirname(T.TARDYD)
UNIT = os.path.join(BUILDDIR, "systemd", "tardyd.service")


def local_unit(tmp):
    """The generated unit, pointed at the built binary and shipped config
    so systemd-analyze can check the commands exist."""
    with open(UNIT) as f:
        text = f.read()
    text = re.sub(r"(?<==)/\S*/tardyd(?= )", T.TARDYD, text)
    text = re.sub(r"/\S*/tardy/tardy\.conf",
                  os.path.join(T.TOP_SRCDIR, "conf", "tardy.conf"), text)
    path = os.path.join(tmp, "tardyd.service")
    with open(path, "w") as f:
        f.write(text)
    return path


def need(tool):
    if shutil.which(tool) is None:
        T.skip("%s not installed" % tool)


def test_unit_generated_with_paths():
    with open(UNIT) as f:
        text = f.read()
    T.expect(not re.search(r"@[a-z]+@", text),
             "unsubstituted placeholder in the unit")
    T.expect(re.search(r"^Type=notify$", text, re.M), "Type=notify")
    T.expect(re.search(r"^ExecReload=\S+/tardyd -t ", text, re.M),
             "ExecReload validates the config first")


def test_unit_verifies():
    need("systemd-analyze")
    tmp = tempfile.mkdtemp()
    try:
        r = subprocess.run(["systemd-analyze", "verify", "--man=no",
                            local_unit(tmp)], capture_output=True, text=True)
        T.expect(r.returncode == 0 and r.stderr.strip() == "",
                 "verify: %d %s" % (r.returncode, r.stderr))
    finally:
        shutil.rmtree(tmp)


def test_unit_exposure_at_most_2():
    need("systemd-analyze")
    tmp = tempfile.mkdtemp()
    try:
        r = subprocess.run(["systemd-analyze", "security", "--offline=true",
                            local_unit(tmp)], capture_output=True, text=True)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)",
                      r.stdout + r.stderr)
        T.expect(m, "no exposure level in: %s" % r.stdout[-500:])
        level = float(m.group(1))
        print("# exposure %.1f" % level)
        T.expect(level <= 2.0, "exposure %.1f > 2.0" % level)
    finally:
        shutil.rmtree(tmp)


def test_man_pages_lint():
    pages = [os.path.join(T.TOP_SRCDIR, "doc", p)
             for p in ("tardyd.8", "tardyctl.1", "tardy.conf.5")]
    if shutil.which("mandoc"):
        r = subprocess.run(["mandoc", "-T", "lint", "-W", "warning"] + pages,
                           capture_output=True, text=True)
        T.expect(r.returncode == 0, r.stdout + r.stderr)
    elif shutil.which("groff"):
        for p in pages:
            r = subprocess.run(["groff", "-mandoc", "-ww", "-z", p],
                               capture_output=True, text=True)
            T.expect(r.stderr.strip() == "", r.stderr)
    else:
        T.skip("neither mandoc nor groff installed")


def test_shipped_config_checks():
    r = subprocess.run([T.TARDYD, "-t", "-c",
                        os.path.join(T.TOP_SRCDIR, "conf", "tardy.conf")],
                       capture_output=True, text=True, timeout=10)
    T.expect(r.returncode == 0, r.stderr)
    T.expect(r.stdout == "configuration OK\n", repr(r.stdout))



def configure_without(tmp, hidden, *args):
    """Run the shipped configure script in a copy of what it reads, with
    pkg-config seeing every package of this machine but hidden. Returns
    the CompletedProcess."""
    src = os.path.join(tmp, "src")
    os.makedirs(src)
    for name in ("configure", "Makefile.in", "autoconf.h.in"):
        shutil.copy(os.path.join(T.TOP_SRCDIR, name), tmp)
    shutil.copy(os.path.join(T.TOP_SRCDIR, "src", "tardyd.c"), src)
    shutil.copytree(os.path.join(T.TOP_SRCDIR, "build-aux"),
                    os.path.join(tmp, "build-aux"))
    pc = os.path.join(tmp, "pc")
    os.makedirs(pc)
    path = subprocess.run(["pkg-config", "--variable", "pc_path",
                           "pkg-config"], capture_output=True, text=True,
                          check=True).stdout.strip()
    for d in path.split(":"):
        for name in (os.listdir(d) if os.path.isdir(d) else ()):
            if (name.endswith(".pc") and name != hidden + ".pc" and
                    not os.path.exists(os.path.join(pc, name))):
                os.symlink(os.path.join(d, name), os.path.join(pc, name))
    env = dict(os.environ, PKG_CONFIG_LIBDIR=pc, PKG_CONFIG_PATH="")
    return subprocess.run(["sh", "./configure",
                           "--disable-dependency-tracking"] + list(args),
                          cwd=tmp,
                          env=env, capture_output=True, text=True,
                          timeout=300 * T.SLOW)


def test_configure_requires_check():
    # Without check the C suites could not run, and configure used to
    # warn while make check passed without them: CI must never pass so.
    need("pkg-config")
    with tempfile.TemporaryDirectory() as tmp:
        r = configure_without(tmp, "check")
        T.expect(r.returncode != 0, "configure passed without check")
        T.expect("check >= 0.11 not found" in r.stderr and
                 "--without-check" in r.stderr,
                 "configure's error: %r" % r.stderr[-500:])
    with tempfile.TemporaryDirectory() as tmp:
        r = configure_without(tmp, "check", "--without-check")
        T.expect(r.returncode == 0, "--without-check: %r" %
                 (r.stdout[-300:] + r.stderr[-300:]))


T.main(globals())

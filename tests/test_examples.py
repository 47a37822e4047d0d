"""The documented per-test examples (examples/) run as they are."""

import importlib.util
import os
import shutil
import subprocess
import sys

import tardytest as T

EXAMPLES = os.path.join(T.TOP_SRCDIR, "examples")


def run(argv, timeout=60):
    env = dict(os.environ, TARDYD=T.TARDYD, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(argv, capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=EXAMPLES)


def test_shell_example():
    r = run(["sh", os.path.join(EXAMPLES, "shell", "example.sh")])
    for line in (r.stdout + r.stderr).splitlines():
        print("# " + line)
    T.expect(r.returncode == 0 and "PASS" in r.stdout, "example failed")


def pytest_command():
    """This Python's pytest, or Debian's pytest-3 (python3-pytest)."""
    if importlib.util.find_spec("pytest") is not None:
        return [sys.executable, "-m", "pytest"]
    for name in ("pytest-3", "pytest"):
        if shutil.which(name):
            return [shutil.which(name)]
    return None


def test_pytest_example():
    cmd = pytest_command()
    if cmd is None:
        T.skip("pytest not installed (Debian: python3-pytest)")
    r = run(cmd + ["-q", "-p", "no:cacheprovider",
                   os.path.join(EXAMPLES, "pytest")])
    for line in (r.stdout + r.stderr).splitlines():
        print("# " + line)
    T.expect(r.returncode == 0, "pytest exit %d" % r.returncode)


T.main(globals())

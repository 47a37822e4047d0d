"""The documented per-test examples (examples/) run as they are."""

import importlib.util
import os
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


def test_pytest_example():
    if importlib.util.find_spec("pytest") is None:
        T.skip("pytest not installed (Debian: python3-pytest)")
    r = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             os.path.join(EXAMPLES, "pytest")])
    for line in (r.stdout + r.stderr).splitlines():
        print("# " + line)
    T.expect(r.returncode == 0, "pytest exit %d" % r.returncode)


T.main(globals())

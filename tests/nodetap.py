"""Running a node:test suite from make check: node's TAP read back and
re-emitted one line per test, so automake counts each Node test, with
the run itself (killed, crashed, no tests) as one more failing test.
Used by tests/test_node_client.py and tests/test_container_testcontainers.py.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

RESULT = re.compile(r"^(ok|not ok) (\d+)(?: - (.*?))?"
                    r"(\s+# (?:SKIP|TODO)\b.*)?$")


def fail(suite, what, details=()):
    """The whole file as one failing test, with the reason."""
    print("1..1")
    print("not ok 1 - %s: %s" % (suite, what))
    for line in details:
        for part in str(line).splitlines():
            print("# " + part)
    sys.exit(1)


def node_modules(suite, suite_dir, env_var, packages, install):
    """The node_modules ($env_var, else suite_dir's) holding packages at
    the versions suite_dir/package.json pins, or fail saying how to
    install them."""
    nm = os.environ.get(env_var) or os.path.join(suite_dir, "node_modules")
    with open(os.path.join(suite_dir, "package.json")) as f:
        want = json.load(f)["dependencies"]
    for name in packages:
        try:
            with open(os.path.join(nm, name, "package.json")) as f:
                have = json.load(f).get("version")
        except (OSError, ValueError):
            fail(suite, "%s not installed in %s" % (name, nm), [
                "in the source tree run: " + install,
                "(./bootstrap.sh build and test do; make distcheck needs "
                "%s=<source tree>/%s/node_modules)" % (
                    env_var, os.path.relpath(suite_dir, os.path.dirname(
                        os.path.dirname(suite_dir))))])
        if have != want[name]:
            fail(suite, "%s %s installed in %s, package.json pins %s" %
                 (name, have, nm, want[name]),
                 ["in the source tree run: " + install])
    return nm


def suite_path(suite_dir, suite, nm, tmp):
    """The suite where its imports find nm: in place when nm is
    suite_dir's node_modules, else a copy in tmp beside a link to nm."""
    here = os.path.join(suite_dir, "node_modules")
    if os.path.exists(here) and os.path.samefile(nm, here):
        return os.path.join(suite_dir, suite)
    copy = os.path.join(tmp, suite)
    shutil.copyfile(os.path.join(suite_dir, suite), copy)
    os.symlink(os.path.abspath(nm), os.path.join(tmp, "node_modules"))
    return copy


def run(node, path, env, timeout):
    """Runs node's test runner on path; returns (output lines, exit status
    or None when it had to be killed, seconds). Its own process group, so
    a hung suite is killed whole: node, its test child and what that
    child started."""
    t0 = time.monotonic()
    proc = subprocess.Popen([node, "--test", "--test-reporter=tap", path],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        status = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        status = None
    return out.decode(errors="replace").splitlines(), status, \
        time.monotonic() - t0


def parse(lines):
    """Node's top-level results: [(ok, name, directive, duration_ms,
    diagnostic lines, the test's own "# " notes)], node's plan count or
    None, and the other top-level comment lines."""
    results, plan, comments = [], None, []
    current = None
    for line in lines:
        m = RESULT.match(line)
        if m:
            current = [m.group(1) == "ok", m.group(3) or "(unnamed)",
                       (m.group(4) or "").strip(), None, [], []]
            results.append(current)
            continue
        m = re.match(r"^1\.\.(\d+)$", line)
        if m:
            plan = int(m.group(1))
            current = None
            continue
        if line.startswith("  ") and current is not None:
            d = re.match(r"^\s+duration_ms: ([0-9.]+)", line)
            if d:
                current[3] = float(d.group(1))
            elif line.strip() not in ("---", "..."):
                current[4].append(line)
            continue
        if line.startswith("# Subtest:") or line.startswith("TAP version"):
            current = None
            continue
        if line.startswith("#") and current is not None:
            current[4].append(line[1:])   # the test's t.diagnostic()
            current[5].append(line)
            continue
        if line.startswith("#"):
            comments.append(line)
        elif line.strip():
            comments.append("# " + line)
    return results, plan, comments


def report(lines, status, timeout, header, own=(), on_failure=()):
    """Print the TAP of a run: own checks first ((ok, name, notes)), then
    node's tests, then what went wrong with the run itself; exit 1 if
    anything failed. on_failure: more "# " lines to show then."""
    results, plan, comments = parse(lines)
    extra = []
    if status is None:
        extra.append("node's test run killed after %.0f s" % timeout)
    elif status != 0 and all(r[0] for r in results):
        extra.append("node exited with status %d" % status)
    if status is not None and not results:
        extra.append("node reported no tests")
    if plan is not None and plan != len(results):
        extra.append("node planned %d tests, reported %d" %
                     (plan, len(results)))

    print("1..%d" % (len(own) + len(results) + len(extra)))
    print("# " + header)
    n = failed = 0
    for ok, name, notes in own:
        n += 1
        print("ok %d - %s" % (n, name))
        for note in notes:
            print("# " + note)
    for ok, name, directive, ms, diag, notes in results:
        n += 1
        took = " (%.0f ms)" % ms if ms is not None else ""
        print("%s %d - %s%s%s" % ("ok" if ok else "not ok", n, name, took,
                                  " " + directive if directive else ""))
        if not ok:
            failed += 1
            for d in diag:
                print("#" + d)
        else:
            for note in notes:
                print(note)
    for what in extra:
        n += 1
        failed += 1
        print("not ok %d - %s" % (n, what))
        for line in lines[-60:]:
            print("# " + line)
    if failed:
        # Node's own summary and anything the suite printed.
        for c in comments:
            print(c)
        for line in on_failure:
            print("# " + line)
    sys.exit(1 if failed else 0)

#!/usr/bin/env python3
"""tardy through the npm Toxiproxy client: runs the Node test suite
tests/node/toxiproxy_client.test.mjs (node:test, toxiproxy-node-client
pinned by tests/node/package-lock.json) and reports each of its tests as
one TAP line, so automake counts them one by one.

The suite starts toxiproxy-server ($TOXIPROXY_SERVER) and an echo server
itself, on loopback. It needs node (18 or later) and the client installed
in tests/node/node_modules by `npm ci --prefix tests/node` (bootstrap.sh
does both); without them this test fails, saying what to run. A build
whose source tree has no node_modules (make distcheck's) can name one with
TARDY_NODE_MODULES=/path/to/node_modules; NODE=/path/to/node picks the
node to run.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile

import nodetap

TOP_SRCDIR = os.environ.get("TOP_SRCDIR") or os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))
SERVER = os.environ.get("TOXIPROXY_SERVER",
                        os.path.join(os.getcwd(), "toxiproxy-server"))
SLOW = float(os.environ.get("TARDY_TEST_SLOW", "1"))
NODE_DIR = os.path.join(TOP_SRCDIR, "tests", "node")
SUITE = "toxiproxy_client.test.mjs"
CLIENT = "toxiproxy-node-client"
INSTALL = "npm ci --prefix tests/node --no-audit --no-fund"
MIN_NODE = (18, 15)     # node:test with --test-reporter, global fetch
TIMEOUT = 120           # s for the whole suite (times TARDY_TEST_SLOW)


def fail(what, details=()):
    nodetap.fail("node client suite", what, details)


def find_node():
    node = os.environ.get("NODE") or shutil.which("node") or \
        shutil.which("nodejs")
    if node is None:
        fail("node not found", [
            "install Node.js 18 or later and npm: apt-get install nodejs "
            "npm (./bootstrap.sh deps does), then in the source tree: " +
            INSTALL])
    try:
        out = subprocess.run([node, "--version"], capture_output=True,
                             text=True, timeout=30 * SLOW).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        fail("%s --version failed" % node, [str(e)])
    m = re.match(r"v(\d+)\.(\d+)", out)
    if not m or (int(m.group(1)), int(m.group(2))) < MIN_NODE:
        fail("node %s is too old" % (out or "?"), [
            "the suite needs node %d.%d or later (node:test with "
            "--test-reporter, global fetch)" % MIN_NODE])
    return node, out


def pinned_version():
    with open(os.path.join(NODE_DIR, "package.json")) as f:
        return json.load(f)["dependencies"][CLIENT]


def run_suite(node, path, tmp):
    """Runs the suite; its temporary files go in tmp, removed afterwards
    even if the suite could not clean up."""
    env = dict(os.environ, TOXIPROXY_SERVER=os.path.abspath(SERVER),
               NO_COLOR="1", TMPDIR=tmp)
    return nodetap.run(node, path, env, TIMEOUT * SLOW)


def main():
    node, version = find_node()
    nm = nodetap.node_modules("node client suite", NODE_DIR,
                              "TARDY_NODE_MODULES", [CLIENT], INSTALL)
    tmp = tempfile.mkdtemp(prefix="tardynode.")
    try:
        path = nodetap.suite_path(NODE_DIR, SUITE, nm, tmp)
        lines, status, secs = run_suite(node, path, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    nodetap.report(lines, status, TIMEOUT * SLOW, "%s %s, %s %s, %s: %.1f s"
                   % (node, version, CLIENT, pinned_version(), SUITE, secs))


if __name__ == "__main__":
    main()

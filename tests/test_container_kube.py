#!/usr/bin/env python3
"""contrib/kubernetes/tardy-sidecar.yaml under `podman kube play`.

In a private podman store (tests/podmanlab.py) this builds tardy's image
(contrib/image/build.sh) and the app's stand-in, busybox:1.35, from
Debian's static busybox, then plays the shipped manifest: a ConfigMap
with tardy.conf and a Pod with the app and tardy as its sidecar. The only
change made to the manifest is where its ports are published: every
containerPort gets a random free hostPort on 127.0.0.1 (kube play would
otherwise bind the same port on 0.0.0.0 for every containerPort), and the
pod joins podman's default network rather than a kube network of its
own. Then, as a Kubernetes user would check it:

- the Pod starts and tardy's API answers on the published 8474;
- tardy runs as uid 65534 with no capabilities, no new privileges and a
  read-only root filesystem, under its memory limit;
- a client in the Pod (podman exec into the app container, busybox wget)
  reaches the app through tardy's proxy on 127.0.0.1:18080;
- toxics added through the API take effect for that client: latency
  delays it, refuse makes its connect fail with "Connection refused";
- `podman pod stop -t 10` ends tardy with exit 0 within a second;
- `podman kube down` removes the Pod.

Needs podman, runc, catatonit (for the pod's infra image) and
busybox-static; without them, or if podman cannot run,
the tests fail saying why.
"""

import atexit
import os
import re
import time

import podmanlab
from tardytest import expect, expect_between, http, main

MANIFEST = os.path.join(podmanlab.TOP_SRCDIR, "contrib", "kubernetes",
                        "tardy-sidecar.yaml")
POD = "app-with-tardy"
APP = POD + "-app"              # kube play names containers POD-CONTAINER
TARDY = POD + "-tardy"
PROXY = "app"                   # the ConfigMap's proxy
PROXY_URL = "http://127.0.0.1:18080/"
APP_BODY = "hello from the app"
LATENCY_MS = 500

state = {}                      # lab, play file, host ports


def lab():
    expect("lab" in state, "the pod was not started (see the first test)")
    return state["lab"]


def api(method, path, body=None):
    return http(method, "http://127.0.0.1:%d%s" % (state["api_port"], path),
                body)


def in_pod(script, check=False):
    """Run a shell script in the app container; (status, output)."""
    r = lab().podman("exec", APP, "sh", "-c", script, check=check,
                     timeout=30)
    return r.returncode, (r.stdout + r.stderr).strip()


def fetch_timed():
    """The client in the Pod: wget through tardy's proxy, timed inside
    the container (/proc/uptime, 10 ms steps). (status, seconds, output)"""
    rc, out = in_pod('read a _ </proc/uptime; '
                     'wget -q -O- %s 2>&1; rc=$?; '
                     'read b _ </proc/uptime; echo "@@ $rc $a $b"' % PROXY_URL)
    m = re.search(r"@@ (\d+) ([0-9.]+) ([0-9.]+)$", out)
    expect(m is not None, "client in the pod: %s" % out)
    return int(m.group(1)), float(m.group(3)) - float(m.group(2)), \
        out[:m.start()].strip()


def published_manifest(text):
    """The manifest with every containerPort published at a random free
    port on 127.0.0.1 (a hostIP and a hostPort line after it, indented
    alike); returns (text, {container port: host port})."""
    ports = {}
    out = []
    for line in text.splitlines(keepends=True):
        out.append(line)
        m = re.match(r"^(\s*)(- )?containerPort: *(\d+)\s*$", line)
        if m:
            indent = m.group(1) + ("  " if m.group(2) else "")
            host = podmanlab.free_port()
            ports[int(m.group(3))] = host
            out.append("%shostIP: 127.0.0.1\n%shostPort: %d\n" %
                       (indent, indent, host))
    return "".join(out), ports


def test_pod_starts():
    with open(MANIFEST) as f:
        manifest = f.read()
    pm = podmanlab.PodmanLab().__enter__()
    state["lab"] = pm
    atexit.register(pm.close)
    image = pm.build_image()
    version = image.rsplit(":", 1)[1]
    images = re.findall(r"^\s*image: *(\S+)\s*$", manifest, re.M)
    expect("tardy:" + version in images,
           "%s names %s; `make image` builds tardy:%s (configure.ac): "
           "update the manifest" % (MANIFEST, images, version))
    expect("busybox:1.35" in images, "the app image is %s" % images)
    pm.busybox_image("localhost/busybox:1.35")

    for attempt in range(3):
        text, ports = published_manifest(manifest)
        expect(8474 in ports, "no containerPort 8474 in %s" % MANIFEST)
        path = os.path.join(pm.dir, "tardy-sidecar.yaml")
        with open(path, "w") as f:
            f.write(text)
        t0 = time.monotonic()
        r = pm.podman("kube", "play", "--network", "podman", path,
                      check=False)
        if r.returncode == 0:
            break
        pm.podman("kube", "down", path, check=False)
        if "address already in use" not in r.stderr or attempt == 2:
            raise AssertionError("podman kube play: %s" % r.stderr[-2000:])
    state["play_file"] = path
    state["api_port"] = ports[8474]
    deadline = time.monotonic() + 10
    while True:
        try:
            st, body = api("GET", "/version")
            if st == 200:
                break
        except OSError:
            pass
        expect(time.monotonic() < deadline, "tardy's API did not answer: "
               "%s" % pm.podman("logs", TARDY, check=False).stderr)
        time.sleep(0.01)
    ready = time.monotonic() - t0
    expect(body.get("version") == version, "GET /version: %r" % body)
    st, proxies = api("GET", "/proxies")
    expect(st == 200 and PROXY in proxies, "GET /proxies: %s %r" %
           (st, proxies))
    expect(proxies[PROXY]["upstream"] == "127.0.0.1:8080",
           "proxy from the ConfigMap: %r" % proxies[PROXY])
    states = pm.podman("pod", "ps", "--format", "{{.Name}} {{.Status}}",
                      "--filter", "name=" + POD).stdout.split()
    expect(states[:2] == [POD, "Running"], "pod: %s" % states)
    print("# kube play to tardy's /version: %.0f ms" % (ready * 1000))


def test_tardy_runs_unprivileged_on_a_read_only_root():
    pm = lab()
    pid = pm.inspect(TARDY, "{{.State.Pid}}")
    with open("/proc/%s/status" % pid) as f:
        status = dict(line.rstrip("\n").split(":\t", 1) for line in f
                      if ":\t" in line)
    expect(status["Uid"].split() == ["65534"] * 4, "Uid %s" % status["Uid"])
    expect(status["Gid"].split() == ["65534"] * 4, "Gid %s" % status["Gid"])
    for cap in ("CapPrm", "CapEff", "CapBnd", "CapAmb"):
        expect(int(status[cap], 16) == 0, "%s %s" % (cap, status[cap]))
    expect(status["NoNewPrivs"].strip() == "1", "NoNewPrivs %s" %
           status["NoNewPrivs"])
    ro, mem = pm.inspect(TARDY, "{{.HostConfig.ReadonlyRootfs}} "
                        "{{.HostConfig.Memory}}").split()
    expect(ro == "true", "ReadonlyRootfs %s" % ro)
    expect(int(mem) == 64 * 1024 * 1024, "memory limit %s" % mem)
    print("# tardyd in the pod: uid 65534, no capabilities, read-only "
          "root, VmRSS %s" % status["VmRSS"].strip())


def test_client_in_pod_reaches_app_through_tardy():
    rc, secs, out = fetch_timed()
    expect(rc == 0 and out == APP_BODY, "wget %s: %d %r" %
           (PROXY_URL, rc, out))
    expect(secs < 0.3, "a fetch through tardy took %.2f s" % secs)
    # The app itself listens on 127.0.0.1 only: tardy is the way in.
    st, p = api("GET", "/proxies/" + PROXY)
    expect(st == 200, "GET /proxies/app: %s %r" % (st, p))


def test_latency_toxic_from_the_api_delays_the_client():
    st, t = api("POST", "/proxies/%s/toxics" % PROXY,
                {"name": "slow", "type": "latency", "stream": "downstream",
                 "attributes": {"latency": LATENCY_MS}})
    expect(st == 200, "add latency: %s %r" % (st, t))
    rc, secs, out = fetch_timed()
    expect(rc == 0 and out == APP_BODY, "wget with latency: %d %r" %
           (rc, out))
    expect_between(secs, LATENCY_MS / 1000 - 0.01, LATENCY_MS / 1000 + 0.5,
                   "fetch with latency %d ms (s)" % LATENCY_MS)
    print("# fetch in the pod with latency %d ms: %.2f s" % (LATENCY_MS,
                                                             secs))
    st, _ = api("DELETE", "/proxies/%s/toxics/slow" % PROXY)
    expect(st == 204, "remove latency: %s" % st)
    rc, secs, out = fetch_timed()
    expect(rc == 0 and secs < 0.3, "after removing it: %d, %.2f s" %
           (rc, secs))


def test_refuse_toxic_from_the_api_refuses_the_client():
    st, t = api("POST", "/proxies/%s/toxics" % PROXY,
                {"name": "no_entry", "type": "refuse"})
    expect(st == 200, "add refuse: %s %r" % (st, t))
    rc, secs, out = fetch_timed()
    expect(rc != 0 and "Connection refused" in out,
           "wget with refuse: %d %r" % (rc, out))
    expect(secs < 0.3, "refused after %.2f s, not at once" % secs)
    st, _ = api("DELETE", "/proxies/%s/toxics/no_entry" % PROXY)
    expect(st == 204, "remove refuse: %s" % st)
    rc, secs, out = fetch_timed()
    expect(rc == 0 and out == APP_BODY, "after removing it: %d %r" %
           (rc, out))


def test_pod_stop_ends_tardy_with_exit_0_at_once():
    pm = lab()
    t0 = time.time()
    pm.podman("pod", "stop", "-t", "10", POD)
    took = time.time() - t0
    for c in (TARDY, APP):
        code, finished = pm.inspect(c, "{{.State.ExitCode}} "
                                   "{{.State.FinishedAt.UnixNano}}").split()
        after = int(finished) / 1e9 - t0
        expect(code == "0", "%s exited %s: %s" % (
            c, code, pm.podman("logs", c, check=False).stderr[-1500:]))
        expect(after < 1.0, "%s exited %.2f s after pod stop began" %
               (c, after))
        if c == TARDY:
            print("# tardy exited 0, %.0f ms after `podman pod stop` began "
                  "(which took %.0f ms)" % (after * 1000, took * 1000))
    log = pm.podman("logs", TARDY).stderr
    expect("shutting down" in log, "tardy's log: %s" % log[-1000:])


def test_kube_down_removes_the_pod():
    pm = lab()
    pm.podman("kube", "down", state["play_file"])
    r = pm.podman("pod", "exists", POD, check=False)
    expect(r.returncode == 1, "pod still exists after kube down")
    left = pm.podman("ps", "-a", "--format", "{{.Names}}").stdout.split()
    expect(left == [], "containers left: %s" % left)
    pm.close()


if __name__ == "__main__":
    main(globals())

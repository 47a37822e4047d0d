// tardy's image started by Testcontainers' ToxiProxyContainer in place of
// Toxiproxy's (testcontainers and @testcontainers/toxiproxy, pinned in
// package.json), as a Node suite would start Toxiproxy.
//
// Run by tests/test_container_testcontainers.py, which builds the images
// into a private podman store, starts podman's Docker-compatible API on a
// private socket and sets:
//   DOCKER_HOST                   unix://.../api.sock
//   TESTCONTAINERS_RYUK_DISABLED  true (no Ryuk image offline)
//   TESTCONTAINERS_HOST_OVERRIDE  127.0.0.1 (mapped ports on loopback)
//   TARDY_IMAGE                   localhost/tardy:VERSION
//   TARDY_ECHO_IMAGE              FROM scratch + Debian's static busybox
// The upstream is a second container, a busybox `nc -ll -e cat` echo,
// started in tardy's network namespace (network mode container:ID, the
// sidecar layout of a Kubernetes Pod), so tardy reaches it on 127.0.0.1:
// the only traffic is from this process to mapped ports on loopback and on
// the loopback inside the containers the test started. (A Testcontainers
// Network with an alias for the echo works too once tardy's resolver
// sends names in one case: podman 4.3's aardvark-dns does not answer
// evdns' 0x20 mixed-case queries for NAME.dns.podman; see
// doc/containers.md.)

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { performance } from "node:perf_hooks";

import {
    GenericContainer, ImageName, getContainerRuntimeClient,
} from "testcontainers";
import { ToxiProxyContainer } from "@testcontainers/toxiproxy";

const IMAGE = process.env.TARDY_IMAGE;
const ECHO_IMAGE = process.env.TARDY_ECHO_IMAGE;
const SLOW = Number(process.env.TARDY_TEST_SLOW || "1");
const WAIT_MS = 5000 * SLOW;
const T = { timeout: 60000 * SLOW };
const ECHO_PORT = 7000;
const UPSTREAM = `127.0.0.1:${ECHO_PORT}`;     // in tardy's netns
// testcontainers-go starts Toxiproxy as `-host=0.0.0.0 -config=FILE`, the
// file copied into the container before it starts: do the same.
const CONFIG_PATH = "/tmp/tc-toxiproxy.json";
const CONFIG = [{ name: "from_config", listen: "0.0.0.0:8666",
                  upstream: UPSTREAM, enabled: true }];

const LATENCY_MS = 300;
const SLACK_MS = 250;       // above the latency, for a loaded machine
const FAST_MS = 150;        // a round trip through DNAT and two containers
const CONNECT_TIMEOUT_MS = 1000;

let runtime;        // testcontainers' ContainerRuntimeClient
let echo;           // the busybox echo container
let tardy;          // StartedToxiProxyContainer
let proxy;          // createProxy()'s { host, port, instance }

// --- helpers -------------------------------------------------------------

// Connects to host:port and sends payload; resolves with the bytes echoed
// and the ms from the write to the last byte. Rejects with the socket's
// error (err.code) or when the echo is short or late.
function roundTrip(host, port, payload = Buffer.from("ping\n"), timeout = WAIT_MS) {
    return new Promise((resolve, reject) => {
        const sock = net.connect({ host, port });
        const chunks = [];
        let got = 0;
        let t0 = 0;
        const done = (f, v) => {
            clearTimeout(timer);
            sock.destroy();
            f(v);
        };
        const timer = setTimeout(() => done(reject, new Error(
            `echo through ${host}:${port}: ${got} of ${payload.length} bytes ` +
            `back after ${timeout} ms`)), timeout);
        sock.on("connect", () => {
            t0 = performance.now();
            sock.write(payload);
        });
        sock.on("data", (d) => {
            chunks.push(d);
            got += d.length;
            if (got >= payload.length) {
                done(resolve, { data: Buffer.concat(chunks), ms: performance.now() - t0 });
            }
        });
        sock.on("end", () => done(reject, new Error(
            `${host}:${port} closed after ${got} of ${payload.length} bytes`)));
        sock.on("error", (e) => done(reject, e));
    });
}

async function echoes(host, port) {
    const payload = Buffer.from(`ping ${Math.random()}\n`);
    const { data, ms } = await roundTrip(host, port, payload);
    assert.ok(data.equals(payload), `echo through ${host}:${port}: got ${JSON.stringify(String(data))}`);
    return ms;
}

// The echo container answers a moment after it starts: retry a while.
async function echoesSoon(host, port) {
    const deadline = performance.now() + WAIT_MS;
    for (;;) {
        try {
            return await echoes(host, port);
        } catch (e) {
            if (performance.now() > deadline) {
                throw e;
            }
            await new Promise((r) => setTimeout(r, 50));
        }
    }
}

// What connect() to host:port gives within ms: "connected", "timeout" or
// the error's code.
function connectOutcome(host, port, ms = CONNECT_TIMEOUT_MS) {
    return new Promise((resolve) => {
        const sock = net.connect({ host, port });
        const timer = setTimeout(() => {
            sock.destroy();
            resolve("timeout");
        }, ms);
        sock.on("connect", () => {
            clearTimeout(timer);
            sock.destroy();
            resolve("connected");
        });
        sock.on("error", (e) => {
            clearTimeout(timer);
            resolve(e.code || e.message);
        });
    });
}

// --- set-up --------------------------------------------------------------

before(async () => {
    assert.ok(IMAGE && ECHO_IMAGE, "TARDY_IMAGE and TARDY_ECHO_IMAGE must name local images");
    runtime = await getContainerRuntimeClient();
});

after(async () => {
    // Whatever a failed test left; the runner's private store is removed
    // afterwards anyway.
    for (const c of [echo, tardy]) {
        if (c) {
            await c.stop({ timeout: 0 }).catch(() => {});
        }
    }
});

// --- tests ---------------------------------------------------------------

test("the images are in the local store, so nothing is pulled", T, async () => {
    for (const name of [IMAGE, ECHO_IMAGE]) {
        assert.ok(await runtime.image.exists(ImageName.fromString(name)),
            `${name} is not in the store DOCKER_HOST serves; ToxiProxyContainer would try to pull it`);
    }
});

test("ToxiProxyContainer(tardy) starts, waited for on GET /version, with testcontainers-go's -config", T, async (t) => {
    const t0 = performance.now();
    // Podman picks the 33 host ports of Toxiproxy's mappings itself; on a
    // busy machine one of them can be taken between its pick and its
    // bind ("address already in use"), which says nothing about tardy:
    // that start is tried again, at most twice.
    for (let attempt = 1; ; attempt++) {
        try {
            tardy = await new ToxiProxyContainer(IMAGE)
                .withCopyContentToContainer([{ content: JSON.stringify(CONFIG), target: CONFIG_PATH }])
                .withCommand(["-host=0.0.0.0", `-config=${CONFIG_PATH}`])
                .start();
            break;
        } catch (e) {
            if (attempt >= 3 || !/address already in use/.test(String(e.message)))
                throw e;
            t.diagnostic(`start ${attempt}: ${e.message.trim()}; again`);
        }
    }
    t.diagnostic(`start() to ready: ${Math.round(performance.now() - t0)} ms`);
    const version = await tardy.client.getVersion();
    assert.match(version, /"version"/, `GET /version: ${version}`);

    const fromConfig = await tardy.client.get("from_config");
    assert.equal(fromConfig.listen, "0.0.0.0:8666");
    assert.equal(fromConfig.upstream, UPSTREAM);

    // The upstream, sharing tardy's network namespace.
    echo = await new GenericContainer(ECHO_IMAGE)
        .withNetworkMode(`container:${tardy.getId()}`)
        .withCommand(["nc", "-ll", "-p", String(ECHO_PORT), "-e", "/bin/cat"])
        .start();
    await echoesSoon(tardy.getHost(), tardy.getMappedPort(8666));
});

test("createProxy() to the echo container: a round trip through the mapped port", T, async () => {
    proxy = await tardy.createProxy({ name: "echo", upstream: UPSTREAM });
    assert.equal(proxy.host, "127.0.0.1");
    // 8666 is the -config proxy's: createProxy takes the next free one.
    assert.equal(proxy.instance.listen, "0.0.0.0:8667");
    await echoesSoon(proxy.host, proxy.port);
    const ms = await echoes(proxy.host, proxy.port);
    assert.ok(ms < FAST_MS, `a round trip with no toxic took ${ms.toFixed(0)} ms`);
});

test(`latency ${LATENCY_MS} ms: a round trip through the mapped port takes that long`, T, async (t) => {
    const toxic = await proxy.instance.addToxic({
        name: "slow", type: "latency", stream: "downstream", toxicity: 1,
        attributes: { latency: LATENCY_MS, jitter: 0 },
    });
    const ms = await echoes(proxy.host, proxy.port);
    t.diagnostic(`round trip with latency ${LATENCY_MS}: ${ms.toFixed(0)} ms`);
    assert.ok(ms >= LATENCY_MS && ms < LATENCY_MS + SLACK_MS,
        `round trip took ${ms.toFixed(0)} ms, expected ${LATENCY_MS} to ${LATENCY_MS + SLACK_MS}`);
    await toxic.remove();
});

test("tardy's drop_syn through the generic addToxic: a connect through the mapped port times out", T, async () => {
    const toxic = await proxy.instance.addToxic({
        name: "no_syn_ack", type: "drop_syn", stream: "downstream", toxicity: 1, attributes: {},
    });
    assert.equal(toxic.type, "drop_syn");
    const t0 = performance.now();
    assert.equal(await connectOutcome(proxy.host, proxy.port), "timeout");
    assert.ok(performance.now() - t0 >= CONNECT_TIMEOUT_MS - 5);
    await toxic.remove();
});

test("tardy's refuse through the generic addToxic: a connect through the mapped port gets ECONNREFUSED", T, async () => {
    const toxic = await proxy.instance.addToxic({
        name: "no_entry", type: "refuse", stream: "downstream", toxicity: 1, attributes: {},
    });
    const t0 = performance.now();
    assert.equal(await connectOutcome(proxy.host, proxy.port), "ECONNREFUSED");
    const ms = performance.now() - t0;
    assert.ok(ms < 200, `ECONNREFUSED came after ${ms.toFixed(0)} ms, not at once`);
    await toxic.remove();
});

test("toxics removed: service restored, fast round trips", T, async () => {
    const res = await fetch(`${tardy.client.host}/proxies/echo/toxics`);
    const toxics = await res.json();
    assert.deepEqual(toxics, [], `toxics left: ${JSON.stringify(toxics)}`);
    assert.equal(await connectOutcome(proxy.host, proxy.port), "connected");
    await echoesSoon(proxy.host, proxy.port);
    const ms = await echoes(proxy.host, proxy.port);
    assert.ok(ms < FAST_MS, `a round trip after the toxics took ${ms.toFixed(0)} ms`);
});

test("stop({ timeout: 10000 }): SIGTERM, tardy exits 0 within a second", T, async (t) => {
    // The echo first: it lives in tardy's network namespace.
    await echo.stop({ timeout: 0 });
    echo = null;
    const id = tardy.getId();
    const t0 = Date.now();
    await tardy.stop({ timeout: 10_000, remove: false });
    const stopMs = Date.now() - t0;
    const container = runtime.container.getById(id);
    const info = await runtime.container.inspect(container);
    tardy = null;
    const finished = Date.parse(info.State.FinishedAt);
    t.diagnostic(`stop() returned after ${stopMs} ms; exited ${finished - t0} ms after it was called`);
    assert.equal(info.State.Running, false);
    assert.equal(info.State.ExitCode, 0, `exit code ${info.State.ExitCode}`);
    assert.ok(finished - t0 < 1000,
        `FinishedAt ${info.State.FinishedAt} is ${finished - t0} ms after stop() was called`);
    await runtime.container.remove(container, { removeVolumes: true });
});

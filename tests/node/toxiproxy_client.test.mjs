// tardy driven through the npm Toxiproxy client, toxiproxy-node-client
// (pinned in package.json), as a Node test suite would drive Toxiproxy.
//
// The test starts `toxiproxy-server -host=127.0.0.1 -port=P -config=F`
// itself (the path comes from TOXIPROXY_SERVER, else ../../toxiproxy-server
// beside this file), runs a TCP echo server of its own, and checks what a
// client of the proxies observes: the bytes echoed, how long a round trip
// takes, and the errors connect() and read() report. Everything is on
// loopback, every wait is bounded, and the only process it signals is the
// server it started, by PID.
//
// Run by tests/test_node_client.py in make check, or by hand:
//   node --test --test-reporter=tap tests/node/toxiproxy_client.test.mjs

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";

import { Proxy, Toxic, Toxiproxy, ToxiproxyError } from "toxiproxy-node-client";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SERVER = process.env.TOXIPROXY_SERVER ||
    path.resolve(HERE, "..", "..", "toxiproxy-server");
// Under sanitizers everything is slower: the waits scale, the assertions
// on injected timing do not (as in tests/tardytest.py).
const SLOW = Number(process.env.TARDY_TEST_SLOW || "1");
const WAIT_MS = 5000 * SLOW;        // any single wait for the network
const TEST_TIMEOUT = 30000 * SLOW;  // a whole test
const LOOPBACK = "127.0.0.1";

// Latency toxic bounds: at least the latency, and not absurdly more.
const SLACK_MS = 250;
// A round trip with no toxic on loopback.
const FAST_MS = 100;

let echo;           // { server, port, sockets }
let server;         // { proc, port, dir, stderr() }
let toxiproxy;      // the client
let fromConfig;     // the proxy the -config file made
let p1;             // the proxy createProxy made
let latencyToxic;   // the latency toxic on p1

// --- helpers -------------------------------------------------------------

function withTimeout(promise, ms, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function startEcho() {
    const sockets = new Set();
    const srv = net.createServer((s) => {
        sockets.add(s);
        s.on("error", () => {});    // a reset by the proxy is expected
        s.on("close", () => sockets.delete(s));
        s.pipe(s);
    });
    srv.listen(0, LOOPBACK);
    await withTimeout(once(srv, "listening"), WAIT_MS, "echo server listen");
    return { server: srv, port: srv.address().port, sockets };
}

// A loopback port free now, found by binding port 0 and letting it go.
async function freePort() {
    const srv = net.createServer();
    srv.listen(0, LOOPBACK);
    await withTimeout(once(srv, "listening"), WAIT_MS, "bind port 0");
    const { port } = srv.address();
    await new Promise((resolve) => srv.close(resolve));
    return port;
}

function portOf(listen) {
    const m = /^(?:\[[^\]]*\]|[^:]*):(\d+)$/.exec(listen);
    assert.ok(m, `listen address ${JSON.stringify(listen)} is not host:port`);
    return Number(m[1]);
}

// Starts toxiproxy-server on a port found free; resolves with the server
// once GET /version answers, or with { failed } if it exited first (the
// port was taken meanwhile, say). Leaves nothing behind when it fails.
async function startServerOnce() {
    const port = await freePort();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tardy-node."));
    let proc = null;
    let err = "";
    try {
        const config = path.join(dir, "toxiproxy.json");
        fs.writeFileSync(config, JSON.stringify([{
            name: "from_config",
            listen: `${LOOPBACK}:0`,
            upstream: `${LOOPBACK}:${echo.port}`,
        }]));
        proc = spawn(SERVER, [`-host=${LOOPBACK}`, `-port=${port}`, `-config=${config}`],
            { stdio: ["ignore", "ignore", "pipe"] });
        proc.stderr.setEncoding("utf8");
        proc.stderr.on("data", (d) => { err = (err + d).slice(-8000); });
        let spawnError = null;
        proc.on("error", (e) => { spawnError = e; });
        const deadline = performance.now() + WAIT_MS;
        while (performance.now() < deadline) {
            if (spawnError) {
                throw new Error(`cannot start ${SERVER}: ${spawnError.message}`);
            }
            if (proc.exitCode !== null || proc.signalCode !== null) {
                fs.rmSync(dir, { recursive: true, force: true });
                return { failed: `${SERVER} exited (${proc.exitCode ?? proc.signalCode}): ${err}` };
            }
            try {
                const res = await fetch(`http://${LOOPBACK}:${port}/version`,
                    { signal: AbortSignal.timeout(1000) });
                await res.text();
                if (res.ok) {
                    return { server: { proc, port, dir, stderr: () => err } };
                }
            } catch {
                // not listening yet
            }
            await new Promise((r) => setTimeout(r, 20));
        }
        throw new Error(`${SERVER}: GET /version did not answer in ${WAIT_MS} ms: ${err}`);
    } catch (e) {
        if (proc && proc.pid && proc.exitCode === null && proc.signalCode === null) {
            process.kill(proc.pid, "SIGKILL");
        }
        fs.rmSync(dir, { recursive: true, force: true });
        throw e;
    }
}

// The port found free may be taken before the server binds it: try again.
async function startServer() {
    let why = "";
    for (let attempt = 0; attempt < 3; attempt++) {
        const { server: started, failed } = await startServerOnce();
        if (started) {
            return started;
        }
        why = failed;
    }
    throw new Error(why);
}

// Connects to the port and sends payload; resolves with the bytes echoed
// and the milliseconds from the write to the last byte back. Rejects with
// the socket's error (err.code: ECONNREFUSED, ECONNRESET...) or when the
// echo is short or late.
function roundTrip(port, payload = Buffer.from("ping\n"), timeout = WAIT_MS) {
    return new Promise((resolve, reject) => {
        const sock = net.connect({ host: LOOPBACK, port });
        const chunks = [];
        let got = 0;
        let t0 = 0;
        const done = (f, v) => {
            clearTimeout(timer);
            sock.destroy();
            f(v);
        };
        const timer = setTimeout(() => done(reject,
            new Error(`echo of ${payload.length} bytes through port ${port}: ` +
                `${got} bytes back after ${timeout} ms`)), timeout);
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
        sock.on("end", () => done(reject,
            new Error(`port ${port} closed the connection after ${got} of ${payload.length} bytes`)));
        sock.on("error", (e) => done(reject, e));
    });
}

async function echoes(port, payload = Buffer.from("ping\n")) {
    const { data, ms } = await roundTrip(port, payload);
    assert.ok(data.equals(payload),
        `echo through port ${port}: ${data.length} bytes back, not the ${payload.length} sent`);
    return ms;
}

// What connect() to the port gives: "connected" or the error's code.
function connectOutcome(port, timeout = WAIT_MS) {
    return new Promise((resolve, reject) => {
        const sock = net.connect({ host: LOOPBACK, port });
        const timer = setTimeout(() => {
            sock.destroy();
            reject(new Error(`connect to port ${port}: no outcome in ${timeout} ms`));
        }, timeout);
        sock.on("connect", () => {
            clearTimeout(timer);
            sock.destroy();
            resolve("connected");
        });
        sock.on("error", (e) => {
            clearTimeout(timer);
            sock.destroy();
            resolve(e.code || e.message);
        });
    });
}

// A client request that must fail with this HTTP status.
async function rejectsWithStatus(promise, status) {
    await assert.rejects(promise, (e) => {
        assert.ok(e instanceof ToxiproxyError, `not a ToxiproxyError: ${e}`);
        assert.match(e.message, new RegExp(`status code ${status}\\b`));
        return true;
    });
}

function echoAddr() {
    return `${LOOPBACK}:${echo.port}`;
}

// --- set-up and tear-down ------------------------------------------------

before(async () => {
    echo = await startEcho();
    server = await startServer();
    toxiproxy = new Toxiproxy(`http://${LOOPBACK}:${server.port}`);
});

after(async () => {
    if (server && server.proc.exitCode === null && server.proc.signalCode === null) {
        process.kill(server.proc.pid, "SIGKILL");
        await withTimeout(once(server.proc, "exit"), WAIT_MS, "server exit").catch(() => {});
    }
    if (server) {
        fs.rmSync(server.dir, { recursive: true, force: true });
    }
    if (echo) {
        for (const s of echo.sockets) {
            s.destroy();
        }
        await new Promise((resolve) => echo.server.close(resolve));
    }
});

// --- tests ---------------------------------------------------------------

const T = { timeout: TEST_TIMEOUT };

// Toxic bodies as the client's ICreateToxicBody has them: every field.
function latencyBody(name, ms) {
    return {
        name, type: "latency", stream: "downstream", toxicity: 1,
        attributes: { latency: ms, jitter: 0 },
    };
}

function refuseBody(name) {
    return { name, type: "refuse", stream: "downstream", toxicity: 1, attributes: {} };
}

function expectRoundTrip(t, ms, lo, hi, what = "round trip") {
    t.diagnostic(`${what} ${ms.toFixed(1)} ms`);
    assert.ok(ms >= lo && ms < hi,
        `${what} ${ms.toFixed(1)} ms, expected in [${lo}, ${hi})`);
}

test("getVersion() answers Toxiproxy's {\"version\": ...}", T, async () => {
    const text = await toxiproxy.getVersion();
    const v = JSON.parse(text);
    assert.equal(typeof v.version, "string");
    assert.match(v.version, /^\d+\.\d+\.\d+/);
});

test("the -config proxy is listed by getAll() and get(), and echoes", T, async () => {
    const all = await toxiproxy.getAll();
    assert.ok(all.from_config instanceof Proxy, `getAll(): ${Object.keys(all)}`);
    fromConfig = all.from_config;
    assert.equal(fromConfig.name, "from_config");
    assert.equal(fromConfig.upstream, echoAddr());
    assert.equal(fromConfig.enabled, true);
    assert.notEqual(portOf(fromConfig.listen), 0, "listen reports the port bound");

    const one = await toxiproxy.get("from_config");
    assert.deepEqual(one.toJson(), fromConfig.toJson());
    await echoes(portOf(fromConfig.listen));
});

test("createProxy(): a round trip through the new proxy echoes every byte", T, async () => {
    p1 = await toxiproxy.createProxy({
        name: "p1", listen: `${LOOPBACK}:0`, upstream: echoAddr(),
    });
    assert.ok(p1 instanceof Proxy);
    assert.equal(p1.name, "p1");
    assert.equal(p1.upstream, echoAddr());
    assert.equal(p1.enabled, true);
    const port = portOf(p1.listen);
    assert.notEqual(port, 0);
    assert.notEqual(port, portOf(fromConfig.listen));

    await echoes(port, randomBytes(256 * 1024));
    const all = await toxiproxy.getAll();
    assert.deepEqual(Object.keys(all).sort(), ["from_config", "p1"]);
    assert.equal(all.p1.listen, p1.listen);
});

test("createProxy() of a name that exists fails with 409", T, async () => {
    await rejectsWithStatus(toxiproxy.createProxy({
        name: "p1", listen: `${LOOPBACK}:0`, upstream: echoAddr(),
    }), 409);
    await echoes(portOf(p1.listen));
});

test("addToxic() latency 300 ms downstream: a round trip takes 300 ms", T, async (t) => {
    latencyToxic = await p1.addToxic(latencyBody("lat", 300));
    assert.ok(latencyToxic instanceof Toxic);
    assert.equal(latencyToxic.name, "lat");
    assert.equal(latencyToxic.type, "latency");
    assert.equal(latencyToxic.stream, "downstream");
    assert.equal(latencyToxic.toxicity, 1);
    assert.equal(latencyToxic.attributes.latency, 300);

    const ms = await echoes(portOf(p1.listen));
    expectRoundTrip(t, ms, 300, 300 + SLACK_MS);
});

test("Toxic.update() latency 100: a round trip now takes 100 ms", T, async (t) => {
    // The whole toxic back with new attributes, as IUpdateToxicBody asks.
    const updated = await latencyToxic.update({
        ...latencyToxic.toJson(), attributes: { latency: 100, jitter: 0 },
    });
    assert.ok(updated instanceof Toxic);
    assert.equal(updated.name, "lat");
    assert.equal(updated.attributes.latency, 100);
    const fetched = await p1.getToxic("lat");
    assert.equal(fetched.attributes.latency, 100);
    assert.equal(fetched.type, "latency");
    latencyToxic = updated;

    const ms = await echoes(portOf(p1.listen));
    expectRoundTrip(t, ms, 100, 100 + SLACK_MS);
});

test("Toxic.remove(): round trips are fast again", T, async (t) => {
    await latencyToxic.remove();
    await rejectsWithStatus(p1.getToxic("lat"), 404);
    const ms = await echoes(portOf(p1.listen));
    expectRoundTrip(t, ms, 0, FAST_MS);
});

test("addToxic() of tardy's refuse: connect() fails with ECONNREFUSED until removed", T, async () => {
    const refuse = await p1.addToxic(refuseBody("no_entry"));
    assert.equal(refuse.type, "refuse");
    assert.equal(await connectOutcome(portOf(p1.listen)), "ECONNREFUSED");
    // The other proxy is untouched.
    await echoes(portOf(fromConfig.listen));

    await refuse.remove();
    await echoes(portOf(p1.listen));
});

test("addToxic() reset_peer: the client sees ECONNRESET", T, async () => {
    const reset = await p1.addToxic({
        name: "rst", type: "reset_peer", stream: "upstream", toxicity: 1,
        attributes: { timeout: 0 },
    });
    assert.equal(reset.type, "reset_peer");
    assert.equal(reset.attributes.timeout, 0);
    await assert.rejects(roundTrip(portOf(p1.listen)), (e) => {
        assert.equal(e.code, "ECONNRESET",
            `round trip failed with ${e.code || e.message}, not ECONNRESET`);
        return true;
    });

    await reset.remove();
    await echoes(portOf(p1.listen));
});

test("Proxy.update() enabled=false refuses connections; enabled=true accepts again", T, async () => {
    const port = portOf(p1.listen);
    // A connection open when the proxy is disabled is closed.
    const open = net.connect({ host: LOOPBACK, port });
    open.on("error", () => {});
    await withTimeout(once(open, "connect"), WAIT_MS, "connect before disabling");
    const closed = withTimeout(once(open, "close"), WAIT_MS, "open connection closed on disable");

    // The full body, as the client's typings ask for.
    const disabled = await p1.update({ enabled: false, listen: p1.listen, upstream: p1.upstream });
    assert.ok(disabled instanceof Proxy);
    assert.equal(disabled.enabled, false);
    assert.equal(disabled.listen, p1.listen);
    await closed;
    assert.equal(await connectOutcome(port), "ECONNREFUSED");
    assert.equal((await toxiproxy.get("p1")).enabled, false);

    // Only the field that changes, as plain JavaScript callers send it.
    const enabled = await p1.update({ enabled: true });
    assert.equal(enabled.enabled, true);
    assert.equal(enabled.listen, p1.listen, "enabled again on the same port");
    await echoes(port);
});

test("reset(): every proxy enabled again, every toxic removed", T, async (t) => {
    await fromConfig.addToxic(latencyBody("slow", 400));
    await p1.addToxic(refuseBody("no_entry"));
    await fromConfig.update({
        enabled: false, listen: fromConfig.listen, upstream: fromConfig.upstream,
    });
    assert.equal(await connectOutcome(portOf(fromConfig.listen)), "ECONNREFUSED");
    assert.equal(await connectOutcome(portOf(p1.listen)), "ECONNREFUSED");

    await toxiproxy.reset();

    const all = await toxiproxy.getAll();
    assert.deepEqual(Object.keys(all).sort(), ["from_config", "p1"]);
    for (const p of Object.values(all)) {
        assert.equal(p.enabled, true, `${p.name} enabled after reset`);
        assert.equal(p.listen, p.name === "p1" ? p1.listen : fromConfig.listen);
    }
    await rejectsWithStatus(fromConfig.getToxic("slow"), 404);
    await rejectsWithStatus(p1.getToxic("no_entry"), 404);
    const ms = await echoes(portOf(fromConfig.listen));
    expectRoundTrip(t, ms, 0, FAST_MS, "from_config round trip");
    await echoes(portOf(p1.listen));
});

test("populate(): creates new proxies, keeps an identical one; the returned objects work", T, async (t) => {
    // A toxic on p1 shows whether populate kept it or replaced it.
    await p1.addToxic(latencyBody("lat", 200));

    const got = await toxiproxy.populate([
        { name: "p1", listen: p1.listen, upstream: echoAddr() },
        { name: "pop_a", listen: `${LOOPBACK}:0`, upstream: echoAddr() },
        { name: "pop_b", listen: `${LOOPBACK}:0`, upstream: echoAddr(), enabled: false },
    ]);
    assert.deepEqual(Object.keys(got).sort(), ["p1", "pop_a", "pop_b"]);
    for (const p of Object.values(got)) {
        assert.ok(p instanceof Proxy);
        assert.equal(p.upstream, echoAddr());
    }

    // p1 was identical: kept with its port and its toxic.
    assert.equal(got.p1.listen, p1.listen);
    assert.equal(got.p1.enabled, true);
    const lat = await got.p1.getToxic("lat");
    assert.equal(lat.attributes.latency, 200);
    const ms = await echoes(portOf(p1.listen));
    expectRoundTrip(t, ms, 200, 200 + SLACK_MS, "kept p1 round trip");
    await lat.remove();

    // pop_a: new and serving on the port it reports; the returned object
    // drives it.
    const popA = got.pop_a;
    assert.equal(popA.enabled, true);
    assert.notEqual(portOf(popA.listen), 0, `pop_a listen ${popA.listen}`);
    await echoes(portOf(popA.listen), randomBytes(64 * 1024));
    const refuse = await popA.addToxic(refuseBody("no_entry"));
    assert.equal(await connectOutcome(portOf(popA.listen)), "ECONNREFUSED");
    await refuse.remove();
    await echoes(portOf(popA.listen));

    // pop_b: created disabled. Like Toxiproxy, it reports the listen
    // address it was given ("127.0.0.1:0") until it is enabled, through the
    // returned object, which sends that address back.
    const popB = got.pop_b;
    assert.equal(popB.enabled, false);
    if (portOf(popB.listen) !== 0) {
        assert.equal(await connectOutcome(portOf(popB.listen)), "ECONNREFUSED");
    }
    const b = await popB.update({ enabled: true, listen: popB.listen, upstream: popB.upstream });
    assert.equal(b.enabled, true);
    assert.notEqual(portOf(b.listen), 0, `pop_b listen ${b.listen} once enabled`);
    await echoes(portOf(b.listen));

    const all = await toxiproxy.getAll();
    assert.deepEqual(Object.keys(all).sort(), ["from_config", "p1", "pop_a", "pop_b"]);
});

test("Proxy.remove(): the proxy is gone from getAll() and its port refuses", T, async () => {
    const popA = await toxiproxy.get("pop_a");
    const port = portOf(popA.listen);
    await popA.remove();
    await p1.remove();

    const all = await toxiproxy.getAll();
    assert.deepEqual(Object.keys(all).sort(), ["from_config", "pop_b"]);
    await rejectsWithStatus(toxiproxy.get("pop_a"), 404);
    await rejectsWithStatus(p1.remove(), 404);
    assert.equal(await connectOutcome(port), "ECONNREFUSED");
    assert.equal(await connectOutcome(portOf(p1.listen)), "ECONNREFUSED");
    await echoes(portOf(fromConfig.listen));
});

test("toxiproxy-server exits with status 0 on SIGTERM", T, async () => {
    assert.equal(server.proc.exitCode, null, `exited early: ${server.stderr()}`);
    assert.equal(server.proc.signalCode, null, `killed early: ${server.stderr()}`);
    const exited = once(server.proc, "exit");
    process.kill(server.proc.pid, "SIGTERM");
    const [code, signal] = await withTimeout(exited, WAIT_MS, "exit after SIGTERM");
    assert.equal(signal, null, `killed by ${signal}: ${server.stderr()}`);
    assert.equal(code, 0, `exit status ${code}: ${server.stderr()}`);
    assert.equal(await connectOutcome(portOf(fromConfig.listen)), "ECONNREFUSED");
});

#!/usr/bin/env python3
"""curl, a real HTTP client, through tardy: the exit code and time each
fault gives it.

The upstream is Python's http.server on 127.0.0.1:0 in a thread. curl's
exit codes: 0 ok, 7 could not connect, 18 partial file, 28 timeout,
56 receive failure.
"""

import os
import shutil
import subprocess
import tempfile

import tardytest
from tardytest import expect, now, skip

CURL = shutil.which("curl")
BODY = b"tardy says hello\n" * 100
SLACK = 0.250           # s: curl's own start-up and exit on top of a timeout


def HttpUpstream():
    return tardytest.HttpServer(tardytest.http_handler(BODY))


class Lab(tardytest.Lab):
    """tardytest's Lab, and curl run against its proxy."""

    def __init__(self, upstream):
        if CURL is None:
            skip("curl is not installed")
        super().__init__(upstream)
        host, port = self.addr[1]
        self.url = "http://%s:%d/" % (host, port)
        self.tmp = tempfile.mkdtemp(prefix="tardy-curl.")

    def curl(self, *args):
        """Run curl on the proxy: (exit code, body, headers, seconds)."""
        hdr = os.path.join(self.tmp, "headers")
        if os.path.exists(hdr):
            os.unlink(hdr)
        env = {k: v for k, v in os.environ.items()
               if "proxy" not in k.lower()}
        t0 = now()
        r = subprocess.run([CURL, "-sS", "--noproxy", "*", "-D", hdr] +
                           list(args) + [self.url],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           env=env, timeout=20)
        elapsed = now() - t0
        headers = b""
        if os.path.exists(hdr):
            with open(hdr, "rb") as f:
                headers = f.read()
        return r.returncode, r.stdout, headers, elapsed

    def close(self, check=False):
        shutil.rmtree(self.tmp, ignore_errors=True)
        super().close(check)


def report(what, rc, elapsed):
    print("# curl %s: exit %d after %.0f ms" % (what, rc, elapsed * 1000))


def test_curl_normal():
    with HttpUpstream() as up, Lab(up.spec) as lab:
        rc, body, headers, elapsed = lab.curl("--max-time", "5")
        report("without toxics", rc, elapsed)
        expect(rc == 0, "curl exit %d" % rc)
        expect(body == BODY, "body %r..." % body[:60])
        expect(headers.startswith(b"HTTP/1.0 200"), "headers %r" % headers)


def test_curl_connect_timeout_drop_syn():
    with HttpUpstream() as up, Lab(up.spec) as lab:
        name = lab.add("drop_syn")
        rc, _, _, elapsed = lab.curl("--connect-timeout", "1")
        report("--connect-timeout 1 under drop_syn", rc, elapsed)
        expect(rc == 28, "curl exit %d, expected 28 (timeout)" % rc)
        expect(1.0 <= elapsed < 1.0 + SLACK, "took %.3f s" % elapsed)
        lab.remove(name)
        rc, body, _, _ = lab.curl("--max-time", "5")
        expect(rc == 0 and body == BODY, "after removal: exit %d" % rc)


def test_curl_refused():
    with HttpUpstream() as up, Lab(up.spec) as lab:
        name = lab.add("refuse")
        rc, _, _, elapsed = lab.curl("--connect-timeout", "5")
        report("under refuse", rc, elapsed)
        expect(rc == 7, "curl exit %d, expected 7 (could not connect)" % rc)
        expect(elapsed < SLACK, "refused after %.3f s" % elapsed)
        lab.remove(name)
        rc, body, _, _ = lab.curl("--max-time", "5")
        expect(rc == 0 and body == BODY, "after removal: exit %d" % rc)


def test_curl_max_time_blackhole():
    with HttpUpstream() as up, Lab(up.spec) as lab:
        name = lab.add("blackhole")
        rc, body, _, elapsed = lab.curl("--max-time", "1")
        report("--max-time 1 under blackhole", rc, elapsed)
        expect(rc == 28, "curl exit %d, expected 28 (timeout)" % rc)
        expect(body == b"", "got %r" % body[:60])
        expect(1.0 <= elapsed < 1.0 + SLACK, "took %.3f s" % elapsed)
        lab.remove(name)
        rc, body, _, _ = lab.curl("--max-time", "5")
        expect(rc == 0 and body == BODY, "after removal: exit %d" % rc)


def test_curl_reset_peer():
    with HttpUpstream() as up, Lab(up.spec) as lab:
        # The response is dropped and the reset lands while curl waits.
        lab.add("reset_peer", timeout=200)
        rc, _, _, elapsed = lab.curl("--max-time", "5")
        report("under reset_peer timeout=200", rc, elapsed)
        expect(rc == 56, "curl exit %d, expected 56 (recv failure)" % rc)
        expect(0.2 <= elapsed < 0.2 + SLACK, "took %.3f s" % elapsed)


def test_curl_truncated_limit_data():
    with HttpUpstream() as up, Lab(up.spec) as lab:
        _, _, headers, _ = lab.curl("--max-time", "5")
        lab.add("limit_data", bytes=len(headers) + 100)
        rc, body, _, elapsed = lab.curl("--max-time", "5")
        report("under limit_data (headers + 100 B)", rc, elapsed)
        expect(rc == 18, "curl exit %d, expected 18 (partial file)" % rc)
        expect(body == BODY[:100], "got %d body bytes" % len(body))
        expect(elapsed < SLACK, "took %.3f s" % elapsed)


def test_curl_every_third_stalls_after_headers():
    with HttpUpstream() as up, Lab(up.spec) as lab:
        _, _, headers, _ = lab.curl("--max-time", "5")
        lab.add("stall", after_bytes=len(headers), every=3)
        seen = []
        for i in range(4):
            rc, body, got_headers, elapsed = lab.curl("--max-time", "1")
            seen.append(rc)
            if rc == 28:
                # Headers arrived, the body did not.
                expect(got_headers.startswith(b"HTTP/1.0 200"),
                       "stalled request %d: headers %r" % (i + 1,
                                                           got_headers))
                expect(body == b"", "stalled request got a body")
                expect(1.0 <= elapsed < 1.0 + SLACK, "took %.3f s" % elapsed)
        print("# curl stall after_bytes=<headers> every=3: exits %s" % seen)
        expect(seen == [28, 0, 0, 28], "curl exits %s" % seen)


if __name__ == "__main__":
    tardytest.main(globals())

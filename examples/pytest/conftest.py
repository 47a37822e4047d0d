"""A pytest fixture that gives each test its own tardyd.

Copy this into your suite. tardyd starts on ephemeral ports in a few
milliseconds, tells us its ports through --ready-file, dies with the test
runner (--exit-with-parent), and is stopped by PID after the test.
"""

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

TARDYD = os.environ.get("TARDYD") or shutil.which("tardyd") or "tardyd"


class Tardy:
    def __init__(self, proc, ready):
        self.proc = proc
        self.api = "http://" + ready["api"]
        self.proxies = ready["proxies"]

    def address(self, proxy):
        """(host, port) clients should connect to instead of the service."""
        host, port = self.proxies[proxy].rsplit(":", 1)
        return host.strip("[]"), int(port)

    def request(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.api + path, data=data,
                                     method=method)
        with urllib.request.urlopen(req, timeout=5) as r:
            payload = r.read()
        return json.loads(payload) if payload else None

    def add_toxic(self, proxy, type, stream="downstream", **attributes):
        return self.request("POST", "/proxies/%s/toxics" % proxy,
                            {"type": type, "stream": stream,
                             "attributes": attributes})

    def remove_toxic(self, proxy, name):
        self.request("DELETE", "/proxies/%s/toxics/%s" % (proxy, name))


@pytest.fixture
def tardy(tmp_path, request):
    """tardy(upstream="127.0.0.1:5432") -> Tardy with one proxy, "svc"."""
    started = []

    def start(upstream):
        ready_file = tmp_path / "tardy.json"
        proc = subprocess.Popen(
            [TARDYD, "-q", "-a", "127.0.0.1:0", "--exit-with-parent",
             "--ready-file", str(ready_file),
             "--proxy", "svc=127.0.0.1:0=" + upstream])
        started.append(proc)
        deadline = time.monotonic() + 5
        while not ready_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("tardyd did not start")
            time.sleep(0.001)
        return Tardy(proc, json.loads(ready_file.read_text()))

    yield start
    for proc in started:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0

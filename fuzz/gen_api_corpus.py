#!/usr/bin/env python3
"""Write the seed corpus of fuzz_api (fuzz/corpus/fuzz_api/): one request
per endpoint and method, bodies valid and not, and a few malformed or
pipelined requests. The daemon state they act on is set up by fuzz_api.c
(proxies "p" and "q", toxics "lat" and "bw" on p). A leading '!' sends the
request to the API that wants the token "fuzz-token".
"""
import json
import os


def req(method, path, body=None, headers=(), version="HTTP/1.1"):
    lines = [f"{method} {path} {version}", "Host: 127.0.0.1"]
    lines += list(headers)
    data = b""
    if body is not None:
        data = (body if isinstance(body, (bytes, str)) else
                json.dumps(body))
        if isinstance(data, str):
            data = data.encode()
        lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(data)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "corpus", "fuzz_api")
    os.makedirs(out, exist_ok=True)
    s = {
        "version": req("GET", "/version"),
        "proxies": req("GET", "/proxies"),
        "proxy-create": req("POST", "/proxies", {
            "name": "n", "listen": "127.0.0.1:0",
            "upstream": "127.0.0.1:1", "enabled": True}),
        "proxy-create-unix": req("POST", "/proxies", {
            "name": "u", "listen": "unix:/tmp/tardy-fuzz/u.sock",
            "upstream": "[::1]:5432"}),
        "proxy-create-name": req("POST", "/proxies", {
            "name": "n", "listen": "localhost:0", "upstream": "db:5432"}),
        "proxy-create-bad": req("POST", "/proxies", {
            "name": "a/b", "listen": 5, "upstream": None,
            "enabled": "yes"}),
        "proxy-create-dup": req("POST", "/proxies", {
            "name": "p", "upstream": "127.0.0.1:1"}),
        "proxy-show": req("GET", "/proxies/p"),
        "proxy-update": req("POST", "/proxies/p", {
            "enabled": False, "upstream": "127.0.0.1:2"}),
        "proxy-update-listen": req("PATCH", "/proxies/p", {
            "listen": "127.0.0.1:0"}),
        "proxy-update-same": req("POST", "/proxies/q", {
            "listen": "unix:/tmp/tardy-fuzz/api-q.sock", "enabled": True}),
        "proxy-delete": req("DELETE", "/proxies/p"),
        "proxy-missing": req("GET", "/proxies/nosuch"),
        "populate": req("POST", "/populate", [
            {"name": "p", "listen": "127.0.0.1:0",
             "upstream": "127.0.0.1:3"},
            {"name": "r", "upstream": "127.0.0.1:4", "enabled": False}]),
        "populate-object": req("POST", "/populate", {"proxies": [
            {"name": "q", "listen": "unix:/tmp/tardy-fuzz/api-q.sock",
             "upstream": "unix:/tmp/tardy-fuzz/nowhere.sock"}]}),
        "populate-bad": req("POST", "/populate", [
            {"name": "x", "upstream": "127.0.0.1:1"},
            {"name": "x", "upstream": "127.0.0.1:1"}, 3]),
        "reset": req("POST", "/reset"),
        "toxics": req("GET", "/proxies/p/toxics"),
        "toxic-create": req("POST", "/proxies/p/toxics", {
            "name": "sl", "type": "slicer", "stream": "UPSTREAM",
            "toxicity": 0.5, "attributes": {
                "average_size": 10, "size_variation": 2, "delay": 5}}),
        "toxic-create-sched": req("POST", "/proxies/p/toxics", {
            "type": "timeout", "attributes": {
                "timeout": 10, "after_bytes": 1, "after_ms": 1,
                "duration_ms": 5, "every": 2, "first": 1}}),
        "toxic-create-listener": req("POST", "/proxies/q/toxics", {
            "type": "drop_syn", "attributes": {"after_ms": 0}}),
        "toxic-create-refuse": req("POST", "/proxies/p/toxics", {
            "type": "refuse"}),
        "toxic-create-bad": req("POST", "/proxies/p/toxics", {
            "type": "latency", "stream": "sideways", "toxicity": "1",
            "attributes": {"latency": 1.5}}),
        "toxic-create-dup": req("POST", "/proxies/p/toxics", {
            "name": "lat", "type": "noop"}),
        "toxic-show": req("GET", "/proxies/p/toxics/lat"),
        "toxic-update": req("POST", "/proxies/p/toxics/bw", {
            "toxicity": 1, "attributes": {"rate": 100}}),
        "toxic-update-bad": req("PATCH", "/proxies/p/toxics/lat", {
            "attributes": {"latency": -1}}),
        "toxic-delete": req("DELETE", "/proxies/p/toxics/bw"),
        "connections": req("GET", "/proxies/p/connections"),
        "events": req("GET", "/events?since=1"),
        "events-bad": req("GET", "/events?since=-1&x=%zz"),
        "events-wait": (req("GET", "/events?since=99999&wait=3")
                        + req("GET", "/version")),
        "events-wait-bad": req("GET", "/events?wait=60001"),
        "metrics": req("GET", "/metrics"),
        "method-not-allowed": req("PUT", "/proxies"),
        "head": req("HEAD", "/version"),
        "options": req("OPTIONS", "/proxies/p"),
        "not-found": req("GET", "/proxies/p/toxics/lat/x"),
        "encoded-path": req("GET", "/proxies/%70/toxics/%6c%61t"),
        "nul-path": req("GET", "/proxies/p%00"),
        "trailing-slash": req("GET", "/proxies/"),
        "browser": req("GET", "/proxies", headers=[
            "User-Agent: Mozilla/5.0"]),
        "bad-json": req("POST", "/proxies", b'{"name": "x",'),
        "bad-utf8": req("POST", "/proxies", b'{"name": "\xff\xfe"}'),
        "deep-json": req("POST", "/populate", b"[" * 3000),
        "empty-body": req("POST", "/proxies/p/toxics", b""),
        "http10": req("GET", "/version", version="HTTP/1.0"),
        "close": req("GET", "/proxies", headers=["Connection: close"]),
        "expect": req("POST", "/proxies", {"name": "e",
                      "upstream": "127.0.0.1:1"},
                      headers=["Expect: 100-continue"]),
        "chunked": (b"POST /proxies HTTP/1.1\r\nHost: x\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                    b"5\r\n{\"nam\r\n0\r\n\r\n"),
        "pipelined": (req("GET", "/version") + req("DELETE", "/proxies/q")
                      + req("GET", "/proxies")),
        # Replies to requests after these must be told apart from them.
        "head-pipelined": (req("HEAD", "/version") + req("GET", "/version")
                           + req("HEAD", "/proxies", version="HTTP/1.0",
                                 headers=["Connection: keep-alive"])
                           + req("GET", "/proxies/p")),
        "http09-keepalive": (req("GET", "/proxies/p", version="HTTP/0.9",
                                 headers=["Connection: keep-alive"])
                             + req("GET", "/version")),
        "negative-version": (req("GET", "/nope", version="HTTP/-1.1",
                                 headers=["Connection: keep-alive"])
                             + req("GET", "/version")),
        "connect-pipelined": (b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n"
                              + b"CONNECT x HTTP/9\r\n\r\n"
                              + req("GET", "/version")),
        "chunked-pipelined": (b"POST /proxies/p/toxics HTTP/1.1\r\n"
                              b"Host: 127.0.0.1\r\n"
                              b"Transfer-Encoding: chunked\r\n"
                              b"Expect: 100-continue\r\n\r\n"
                              b"4\r\n{\"ty\r\n10 x\r\n"
                              b"pe\": \"noop\"}    \r\n0\r\nX: y\r\n\r\n"
                              + req("GET", "/proxies/p/toxics")),
        "expect-waiting": (b"POST /proxies/p/toxics HTTP/1.1\r\n"
                           b"Host: 127.0.0.1\r\nContent-Length: 30\r\n"
                           b"Expect: 100-continue\r\n\r\n"),
        "proxy-uri": (req("GET", "http://127.0.0.1/version",
                          headers=["Proxy-Connection: keep-alive"])
                      + req("GET", "/version")),
        "partial": b"GET /proxies HTTP/1.1\r\nHost: x\r\nContent-Len",
        "garbage": b"\x00\x01 / HTTP/9.9\r\n\r\n",
        "long-header": (b"GET / HTTP/1.1\r\nX: " + b"a" * 2000
                        + b"\r\n\r\n"),
        "not-object": req("POST", "/proxies", b"[1]"),
        "proxy-create-udp": req("POST", "/proxies", {
            "name": "u", "listen": "127.0.0.1:0",
            "upstream": "127.0.0.1:9", "protocol": "udp"}),
        "proxy-create-badproto": req("POST", "/proxies", {
            "name": "u", "upstream": "unix:/tmp/tardy-fuzz/x",
            "protocol": "udp"}),
        "udp-toxics": (req("POST", "/populate", [
            {"name": "u", "listen": "[::1]:0", "upstream": "[::1]:9",
             "protocol": "udp"}])
            + req("POST", "/proxies/u/toxics", {
                "type": "loss", "attributes": {"probability_ppm": 500000}})
            + req("POST", "/proxies/u/toxics", {
                "type": "duplicate", "stream": "upstream",
                "attributes": {"probability_ppm": 1000000}})
            + req("POST", "/proxies/u/toxics", {"type": "stall"})
            + req("GET", "/proxies/u/connections")
            + req("POST", "/proxies/u", {"upstream": "127.0.0.1:10"})),
        "token-ok": b"!" + req("GET", "/proxies", headers=[
            "Authorization: Bearer fuzz-token"]),
        "token-bad": b"!" + req("DELETE", "/proxies/p", headers=[
            "Authorization: bearer  fuzz-tokeN"]),
        "token-none": b"!" + req("GET", "/version"),
    }
    for name, data in s.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()

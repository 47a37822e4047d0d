#!/bin/sh
# Example: a shell test that makes curl's connect timeout fire, then
# proves the service answers again once the fault is gone.
#
#   TARDYD=/path/to/tardyd sh example.sh
set -eu

TARDYD=${TARDYD:-tardyd}
dir=$(mktemp -d)
pids=
cleanup() {
	for pid in $pids; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

# The service under test: a static HTTP server on an ephemeral port.
echo "hello from upstream" > "$dir/index.html"
python3 -c '
import http.server, functools, sys
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
h.log_message = lambda *a: None
s = http.server.HTTPServer(("127.0.0.1", 0), h)
open(sys.argv[2], "w").write(str(s.server_address[1]))
s.timeout = 30
s.serve_forever()' "$dir" "$dir/upstream.port" &
pids="$pids $!"
while [ ! -s "$dir/upstream.port" ]; do sleep 0.01; done
upstream=127.0.0.1:$(cat "$dir/upstream.port")

# tardyd in front of it, on ephemeral ports, connect attempts dropped.
"$TARDYD" -q -a 127.0.0.1:0 --exit-with-parent --ready-file "$dir/ready" \
    --proxy "web=127.0.0.1:0=$upstream" --toxic web:drop_syn &
pids="$pids $!"
while [ ! -s "$dir/ready" ]; do sleep 0.01; done
field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$dir/ready" "$1"; }
api=$(field 'd["api"]')
proxy=$(field 'd["proxies"]["web"]')

# The client's connect timeout fires: curl exits 28 after about 1 s.
rc=0
start=$(date +%s%N)
curl -s -o /dev/null --connect-timeout 1 "http://$proxy/" || rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "curl exit $rc after $ms ms"
[ "$rc" -eq 28 ] || { echo "FAIL: expected exit 28"; exit 1; }
[ "$ms" -ge 1000 ] && [ "$ms" -lt 1500 ] || { echo "FAIL: $ms ms"; exit 1; }

# Remove the fault: the service answers again.
curl -sf -X DELETE "http://$api/proxies/web/toxics/drop_syn_downstream"
body=$(curl -sf --max-time 2 "http://$proxy/")
[ "$body" = "hello from upstream" ] || { echo "FAIL: body '$body'"; exit 1; }
echo "PASS"

#!/usr/bin/env bash
# packaging/test-wait-ready.sh PATH/TO/chorus-wait-ready   (ctest: packaging.wait_ready)
#
# The unit's ExecStartPost helper against a stand-in /health/ready server: it finds the address in
# the config (block and flow style, wildcards, CHORUS_HEALTH_PORT), returns 0 on 200, returns 1
# when the agent's pid is gone or the time is up, and does not wait when HTTP is disabled.
set -euo pipefail
helper=${1:?usage: test-wait-ready.sh PATH/TO/chorus-wait-ready}
tmp=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
passed=0
failed=0
check() {  # name expected-status command...
  local name=$1 want=$2 got=0
  shift 2
  "$@" 2>"$tmp/err" || got=$?
  if [ "$got" = "$want" ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $name: exit $got, expected $want; stderr: $(cat "$tmp/err")"
  fi
}

# A server answering GET /health/ready with a fixed status; prints its port once it listens.
serve() {  # status; sets $port (not run in a subshell, so the trap sees the server's pid)
  mkfifo "$tmp/port.$1"
  python3 -u - "$1" >"$tmp/port.$1" <<'PY' &
import http.server, sys
status = int(sys.argv[1])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = status if self.path == "/health/ready" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
  pids+=($!)
  # Reading the fifo blocks until the server prints its port, i.e. listens.
  read -r port <"$tmp/port.$1"
}
serve 200
ok=$port
serve 503
busy=$port

cat >"$tmp/block.yaml" <<EOF2
plugins:
  p2p: { config: { listen: [/ip4/0.0.0.0/tcp/9000] } }
host:
  http:
    listen: 127.0.0.1:$ok # comment
EOF2
check "block style" 0 "$helper" --timeout 10 "$tmp/block.yaml"
printf 'host:\n  http: { listen: "0.0.0.0:%s" }\n' "$ok" >"$tmp/flow.yaml"
check "flow style, wildcard address" 0 "$helper" --timeout 10 "$tmp/flow.yaml"
printf 'host:\n  http:\n    listen: "127.0.0.1:1"\n' >"$tmp/wrong-port.yaml"
check "CHORUS_HEALTH_PORT replaces the port" 0 env CHORUS_HEALTH_PORT="$ok" "$helper" --timeout 10 "$tmp/wrong-port.yaml"
printf 'host:\n  http:\n    listen: ""\n' >"$tmp/disabled.yaml"
check "listener disabled: no wait" 0 "$helper" --timeout 1 "$tmp/disabled.yaml"
printf 'host:\n  http:\n    listen: 127.0.0.1:%s\n' "$busy" >"$tmp/busy.yaml"
true &
dead=$!
wait "$dead"
check "503 and the agent gone" 1 env MAINPID="$dead" "$helper" --timeout 30 "$tmp/busy.yaml"
check "503 until the timeout" 1 "$helper" --timeout 1 "$tmp/busy.yaml"
if grep -q "not ready at http://127.0.0.1:$busy/health/ready" "$tmp/err"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  echo "FAIL: timeout message: $(cat "$tmp/err")"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]

#!/usr/bin/env bash
# The HTTP API against the QUIC client, same cluster, same run: 3 nodes on
# loopback (N=3), 100-byte values, 64 requests in flight. QUIC: `shoal
# bench` (PUT at QUORUM, then GET at ONE). HTTP: wrk with 64 connections
# against node 1 (PUT at QUORUM, GET at ONE), with a bearer token.
# Prints both and the ratios. Installs wrk from Debian when missing.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
PIDS=()
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
trap cleanup EXIT
DURATION=${DURATION:-20}
RECORDS=${RECORDS:-100000}

command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
build_shoal
HTTP_PORT=17180 start_shoal_cluster 17101
TOKEN=$("$SHOAL" token create bench --role readwrite 2>/dev/null)

echo "== QUIC: shoal bench (load = PUT at QUORUM, c = GET at ONE)"
"$SHOAL" bench --workload load,c --records "$RECORDS" --concurrency 64 --duration "$DURATION" \
    --write-consistency quorum --read-consistency one --json >"$WORK/quic.json" 2>/dev/null
quic_put=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(round([w for w in r["reports"] if w["workload"]=="load"][0]["throughput"]))' "$WORK/quic.json")
quic_get=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(round([w for w in r["reports"] if w["workload"]=="c"][0]["throughput"]))' "$WORK/quic.json")

# Each PUT writes a new key, as shoal bench's load does (a blind PUT over
# an existing key would add a sibling instead).
cat >"$WORK/put.lua" <<LUA
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("id", threads)
end
local n = 0
wrk.method = "PUT"
wrk.body = string.rep("v", 100)
wrk.headers["Authorization"] = "Bearer $TOKEN"
request = function()
  n = n + 1
  return wrk.format(nil, string.format("/v1/kv/http%d-%012d?consistency=quorum", id, n))
end
done = function(summary, latency, requests)
  io.write(string.format("non-2xx/3xx: %d\n", summary.errors.status))
end
LUA
cat >"$WORK/get.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $TOKEN"
request = function()
  return wrk.format("GET", string.format("/v1/kv/user%012d?consistency=one", math.random(0, $RECORDS - 1)))
end
done = function(summary, latency, requests)
  io.write(string.format("non-2xx/3xx: %d\n", summary.errors.status))
end
LUA
echo "== HTTP: wrk, 64 connections, node 1"
wrk -t2 -c64 -d"${DURATION}s" --latency -s "$WORK/put.lua" http://127.0.0.1:17180 | tee "$WORK/put.txt"
wrk -t2 -c64 -d"${DURATION}s" --latency -s "$WORK/get.lua" http://127.0.0.1:17180 | tee "$WORK/get.txt"
http_put=$(awk '/Requests\/sec/ {printf "%d", $2}' "$WORK/put.txt")
http_get=$(awk '/Requests\/sec/ {printf "%d", $2}' "$WORK/get.txt")

echo
echo "| operation | QUIC (shoal bench) ops/s | HTTP (wrk) req/s | HTTP / QUIC |"
echo "|---|---|---|---|"
python3 - "$quic_put" "$http_put" "$quic_get" "$http_get" <<'PY'
import sys
qp, hp, qg, hg = map(float, sys.argv[1:])
print(f"| PUT at QUORUM | {qp:,.0f} | {hp:,.0f} | {hp / qp:.2f} |")
print(f"| GET at ONE | {qg:,.0f} | {hg:,.0f} | {hg / qg:.2f} |")
PY

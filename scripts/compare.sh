#!/usr/bin/env bash
# Side-by-side benchmark on this machine, in one run: shoal (3 nodes, N=3,
# durability buffer) next to Redis (one unreplicated node, redis-benchmark)
# and a 3-member etcd cluster, all on loopback with the same value size and
# requests in flight. Prints a Markdown table with the ratios (see BENCH.md).
#
#   scripts/compare.sh              # defaults below
#   SECONDS_PER_RUN=30 CONCURRENCY=64 VALUE_SIZE=100 scripts/compare.sh
#   STORAGE=memory scripts/compare.sh   # memory-only shoal nodes (4 GiB each)
#
# Installs redis-server, redis-tools, etcd-server, etcd-client and
# protobuf-compiler from Debian if missing (needs root or sudo), builds shoal
# and scripts/etcd-load in release mode, and stops everything it started.
set -euo pipefail

SECONDS_PER_RUN=${SECONDS_PER_RUN:-20}
CONCURRENCY=${CONCURRENCY:-64}
VALUE_SIZE=${VALUE_SIZE:-100}
KEYS=${KEYS:-100000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d -t shoal-compare-XXXXXX)
PIDS=()
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
trap cleanup EXIT

log() { echo "== $*" >&2; }

install_packages() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-benchmark >/dev/null || missing+=(redis-tools)
    command -v etcd >/dev/null || missing+=(etcd-server)
    command -v etcdctl >/dev/null || missing+=(etcd-client)
    command -v protoc >/dev/null || missing+=(protobuf-compiler)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo=sudo
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

wait_for_port() { # host port
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on $1:$2" >&2
    return 1
}

json_field() { # json field
    python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"
}

install_packages
log "building shoal and etcd-load (release)"
build_shoal
cargo build --release --locked --manifest-path "$ROOT/scripts/etcd-load/Cargo.toml" -q
ETCD_LOAD="$ROOT/scripts/etcd-load/target/release/etcd-load"
REQUESTS=$((SECONDS_PER_RUN * 60000)) # enough for redis to run about SECONDS_PER_RUN

# --- Redis: one node, writes reach the OS like shoal's buffer durability
log "redis: SET and GET, $CONCURRENCY clients, $VALUE_SIZE B values"
redis-server --port 16379 --bind 127.0.0.1 --save '' --appendonly yes --appendfsync no \
    --dir "$WORK" --daemonize no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
wait_for_port 127.0.0.1 16379
REDIS_CSV=$(redis-benchmark -h 127.0.0.1 -p 16379 -t set,get -n "$REQUESTS" -c "$CONCURRENCY" \
    -d "$VALUE_SIZE" -r "$KEYS" --csv)
REDIS_SET=$(echo "$REDIS_CSV" | awk -F'"' '$2=="SET" {print $4}')
REDIS_GET=$(echo "$REDIS_CSV" | awk -F'"' '$2=="GET" {print $4}')
REDIS_SET_P50=$(echo "$REDIS_CSV" | awk -F'"' '$2=="SET" {print $10}')
REDIS_SET_P99=$(echo "$REDIS_CSV" | awk -F'"' '$2=="SET" {print $14}')
REDIS_GET_P50=$(echo "$REDIS_CSV" | awk -F'"' '$2=="GET" {print $10}')
REDIS_GET_P99=$(echo "$REDIS_CSV" | awk -F'"' '$2=="GET" {print $14}')
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true

# --- etcd: 3 members, default settings (every write fsynced by the leader's WAL)
log "etcd: 3 members, put and get, $CONCURRENCY clients"
CLUSTER="e1=http://127.0.0.1:12380,e2=http://127.0.0.1:22380,e3=http://127.0.0.1:32380"
ETCD_PIDS=()
for i in 1 2 3; do
    etcd --name "e$i" --data-dir "$WORK/etcd$i" \
        --listen-client-urls "http://127.0.0.1:${i}2379" --advertise-client-urls "http://127.0.0.1:${i}2379" \
        --listen-peer-urls "http://127.0.0.1:${i}2380" --initial-advertise-peer-urls "http://127.0.0.1:${i}2380" \
        --initial-cluster "$CLUSTER" --initial-cluster-state new --log-level error \
        >"$WORK/etcd$i.log" 2>&1 &
    PIDS+=($!)
    ETCD_PIDS+=($!)
done
ENDPOINTS=127.0.0.1:12379,127.0.0.1:22379,127.0.0.1:32379
for _ in $(seq 1 100); do
    ETCDCTL_API=3 etcdctl --endpoints "$ENDPOINTS" endpoint health >/dev/null 2>&1 && break
    sleep 0.2
done
ETCD_PUT=$("$ETCD_LOAD" "$ENDPOINTS" put "$CONCURRENCY" "$SECONDS_PER_RUN" "$VALUE_SIZE" "$KEYS")
ETCD_GET=$("$ETCD_LOAD" "$ENDPOINTS" get "$CONCURRENCY" "$SECONDS_PER_RUN" "$VALUE_SIZE" 10000)
for pid in "${ETCD_PIDS[@]}"; do kill "$pid"; wait "$pid" 2>/dev/null || true; done

# --- shoal: 3 node processes, N=3, durability buffer
log "shoal: 3 nodes (${STORAGE:-disk} storage), load (W=2), then reads at R=1 and R=2, $CONCURRENCY in flight"
start_shoal_cluster 17101
bench() { "$SHOAL" bench --json --concurrency "$CONCURRENCY" --value-size "$VALUE_SIZE" \
    --distribution uniform --duration "$SECONDS_PER_RUN" "$@"; }
summary() { # bench json -> "throughput p50_us p99_us" of the last report
    python3 -c 'import json,sys; r=json.loads(sys.stdin.read())["reports"][-1]["all"]; print(r["throughput"], r["p50_us"], r["p99_us"])'
}
# Writes: a load of fresh keys, sized to run about SECONDS_PER_RUN at 20k/s.
read -r SHOAL_PUT SHOAL_PUT_P50 SHOAL_PUT_P99 < <(bench --workload load \
    --records $((SECONDS_PER_RUN * 20000)) --write-consistency 2,2 | summary)
read -r SHOAL_GET1 SHOAL_GET1_P50 SHOAL_GET1_P99 < <(bench --workload c --records "$KEYS" \
    --read-consistency 1,2 | summary)
read -r SHOAL_GET2 SHOAL_GET2_P50 SHOAL_GET2_P99 < <(bench --workload c --records "$KEYS" \
    --read-consistency 2,2 | summary)
# Latency at half of the peak write and read throughput.
# Reads first: the write run re-writes records blindly (new siblings).
read -r _ HALF_GET_P50 HALF_GET_P99 < <(bench --workload c --records "$KEYS" \
    --read-consistency 1,2 --rate "$(python3 -c "print($SHOAL_GET1 / 2)")" | summary)
read -r _ HALF_PUT_P50 HALF_PUT_P99 < <(bench --workload load --records $((SECONDS_PER_RUN * 5000)) \
    --write-consistency 2,2 --rate "$(python3 -c "print($SHOAL_PUT / 2)")" | summary)
RSS_KB=$(for pid in "${PIDS[@]: -3}"; do awk '/VmRSS/ {print $2}' "/proc/$pid/status"; done | sort -n | tail -1)

python3 - "$@" <<EOF
def ms(us): return f"{float(us) / 1000:.2f}"
import json
ep, eg = json.loads('''$ETCD_PUT'''), json.loads('''$ETCD_GET''')
rows = [
    ("write", "shoal load, W=2", $SHOAL_PUT, ms($SHOAL_PUT_P50), ms($SHOAL_PUT_P99)),
    ("write", "redis SET", $REDIS_SET, "$REDIS_SET_P50", "$REDIS_SET_P99"),
    ("write", "etcd put", ep["throughput"], ms(ep["p50_us"]), ms(ep["p99_us"])),
    ("read", "shoal get, R=1", $SHOAL_GET1, ms($SHOAL_GET1_P50), ms($SHOAL_GET1_P99)),
    ("read", "shoal get, R=2", $SHOAL_GET2, ms($SHOAL_GET2_P50), ms($SHOAL_GET2_P99)),
    ("read", "redis GET", $REDIS_GET, "$REDIS_GET_P50", "$REDIS_GET_P99"),
    ("read", "etcd get (linearizable)", eg["throughput"], ms(eg["p50_us"]), ms(eg["p99_us"])),
]
print(f"shoal storage: ${STORAGE:-disk}; $CONCURRENCY requests in flight, $VALUE_SIZE-byte values, ~${SECONDS_PER_RUN} s per run, loopback, $(nproc) cores\n")
print("| op | system | ops/s | p50 ms | p99 ms |")
print("|---|---|---:|---:|---:|")
for op, name, rate, p50, p99 in rows:
    print(f"| {op} | {name} | {float(rate):,.0f} | {p50} | {p99} |")
print()
print(f"- shoal writes / redis SET: {$SHOAL_PUT / $REDIS_SET:.2f}x (target >= 0.5x)")
print(f"- shoal writes / etcd put: {$SHOAL_PUT / ep['throughput']:.1f}x (target >= 10x)")
print(f"- shoal reads R=1 / redis GET: {$SHOAL_GET1 / $REDIS_GET:.2f}x (target >= 0.7x)")
print(f"- shoal at half of peak: writes p50 {ms($HALF_PUT_P50)} ms, p99 {ms($HALF_PUT_P99)} ms; "
      f"reads p50 {ms($HALF_GET_P50)} ms, p99 {ms($HALF_GET_P99)} ms (target p50 < 1, p99 < 5)")
print(f"- largest shoal node RSS after the runs: {$RSS_KB / 1024:.0f} MB")
EOF

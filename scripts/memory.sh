#!/usr/bin/env bash
# Memory of a loaded node: starts 3 shoal nodes (N=3, so each holds every
# key), loads KEYS records of VALUE_SIZE bytes at W=2, waits for the
# replicas to settle, and prints each node's resident set size.
#
#   scripts/memory.sh                  # 1,000,000 keys of 100 bytes
#   KEYS=200000 scripts/memory.sh
set -euo pipefail

KEYS=${KEYS:-1000000}
VALUE_SIZE=${VALUE_SIZE:-100}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d -t shoal-memory-XXXXXX)
PIDS=()
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
trap cleanup EXIT

build_shoal
start_shoal_cluster 17201
echo "loading $KEYS keys of $VALUE_SIZE bytes at W=2 into 3 nodes (N=3)" >&2
"$SHOAL" bench --workload load --records "$KEYS" --value-size "$VALUE_SIZE" --write-consistency 2,2 \
    --json | python3 -c 'import json,sys; r=json.load(sys.stdin)["reports"][0]; print("loaded", r["all"]["count"], "keys at", round(r["throughput"]), "per s,", sum(r["errors"].values()), "failed")'
sleep 10 # the third replica's writes land; flushes finish
for i in 1 2 3; do
    rss=$(awk '/VmRSS/ {print $2}' "/proc/${PIDS[$((i - 1))]}/status")
    disk=$(du -sm "$WORK/node$((i - 1))" | cut -f1)
    echo "node $i: RSS $((rss / 1024)) MB, data directory $disk MB"
done

#!/usr/bin/env bash
# S3 throughput on 3 shoal nodes on loopback (N=3), release build, through
# node 1's gateway: ../shared/s3-bench.py (boto3, 8 threads, 15 s phases
# of PUT and GET for 4 KiB, 1 MiB and 64 MiB objects), with UNIQUE=1 so
# that no two objects share data. Installs boto3 when missing.
#
# ONLY=PUT4K, PUT1M or PUT64M runs that phase alone (scripts/s3-phase.py,
# PHASE_S seconds, default 15) and prints the nodes' CPU per object;
# SHOAL=PATH uses that binary instead of building one.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
PIDS=()
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
trap cleanup EXIT
BENCH=${S3BENCH:-$ROOT/../shared/s3-bench.py}
[ -f "$BENCH" ] || BENCH=/work/shared/s3-bench.py
[ -f "$BENCH" ] || { echo "s3-bench.py not found: set S3BENCH" >&2; exit 1; }

python3 -c 'import boto3' 2>/dev/null || python3 -m pip install -q boto3
if [ -n "${SHOAL:-}" ]; then [ -x "$SHOAL" ] || { echo "SHOAL=$SHOAL is not executable" >&2; exit 1; }; else build_shoal; fi
S3_PORT=17380 start_shoal_cluster 17301
read -r ID SECRET <<<"$(s3_key bench bench)"
if [ -n "${ONLY:-}" ]; then
    NO_PROXY='*' UNIQUE=1 S3BENCH="$BENCH" ONLY="$ONLY" python3 "$ROOT/scripts/s3-phase.py" \
        http://127.0.0.1:17380 bench "$ID" "$SECRET" "${PIDS[@]}"
else
    NO_PROXY='*' UNIQUE=1 python3 "$BENCH" http://127.0.0.1:17380 bench "$ID" "$SECRET" "${PIDS[@]}"
fi
